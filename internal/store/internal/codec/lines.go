package codec

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

// The Lines encoding stores an event's rated lines in one text column of its event row, so an
// event is one row however many lines it has. It is a flat sequence of length-prefixed fields,
// six per line in this order: charge, group, type, quantity, amount, cost. Each field is its
// length in bytes in decimal, a colon, then the bytes; decimals are their exact decimal
// strings. For example one line is
//
//	9:sonnet_in17:claude-sonnet-4-65:usage4:15006:0.00456:0.0045
//
// The result is valid UTF-8 without NUL bytes whenever the fields are, so both drivers store it
// as TEXT. An event without lines stores NULL.
const lineFields = 6

// Lines encodes rated lines; no lines is nil (NULL).
func Lines(ls []store.RatedLine) (*string, error) {
	if len(ls) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.Grow(len(ls) * 64)
	field := func(v string) {
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	for j, l := range ls {
		for _, f := range [...]struct{ name, v string }{{"charge", l.Charge}, {"group", l.Group}, {"type", l.Type}} {
			if err := Text(fmt.Sprintf("line %d %s", j, f.name), f.v); err != nil {
				return nil, err
			}
		}
		field(l.Charge)
		field(l.Group)
		field(l.Type)
		field(Decimal(l.Quantity))
		field(Decimal(l.Amount))
		field(Decimal(l.Cost))
	}
	s := b.String()
	return &s, nil
}

var errBadLines = errors.New("stored rated lines: malformed encoding")

// nextField splits the first field off s.
func nextField(s string) (field, rest string, err error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i > 10 {
		return "", "", errBadLines
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 0 || n > len(s)-i-1 {
		return "", "", errBadLines
	}
	return s[i+1 : i+1+n], s[i+1+n:], nil
}

// lineText splits one line's six fields off s.
func lineText(s string) (f [lineFields]string, rest string, err error) {
	for k := range f {
		if f[k], s, err = nextField(s); err != nil {
			return f, "", err
		}
	}
	return f, s, nil
}

// ParseLines decodes the Lines encoding.
func ParseLines(s string) ([]store.RatedLine, error) {
	var out []store.RatedLine
	for s != "" {
		f, rest, err := lineText(s)
		if err != nil {
			return nil, err
		}
		s = rest
		l := store.RatedLine{Charge: f[0], Group: f[1], Type: f[2]}
		if l.Quantity, err = ParseDecimal(f[3]); err != nil {
			return nil, err
		}
		if l.Amount, err = ParseDecimal(f[4]); err != nil {
			return nil, err
		}
		if l.Cost, err = ParseDecimal(f[5]); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Attributor sums one period's rated lines of one (charge, group, type) by attribution key,
// exactly, from the events' stored lines. Both drivers feed it the period's events and take
// one page of rows from it.
type Attributor struct {
	charge, group, typ, after string
	rows                      map[string]*store.AttributionRow
}

// NewAttributor starts the sums of p's invoice line; keys at or before p.After are skipped.
func NewAttributor(p store.AttributionParams) *Attributor {
	return &Attributor{charge: p.Charge, group: p.Group, typ: p.Type, after: p.After,
		rows: map[string]*store.AttributionRow{}}
}

// Add adds one event's matching lines (lines in the Lines encoding, nil for none) to key's sums.
func (a *Attributor) Add(key string, lines *string) error {
	if lines == nil || key <= a.after {
		return nil
	}
	s := *lines
	var r *store.AttributionRow
	for s != "" {
		f, rest, err := lineText(s)
		if err != nil {
			return err
		}
		s = rest
		if f[0] != a.charge || f[1] != a.group || f[2] != a.typ {
			continue
		}
		q, err := ParseDecimal(f[3])
		if err != nil {
			return err
		}
		amt, err := ParseDecimal(f[4])
		if err != nil {
			return err
		}
		if r == nil {
			if r = a.rows[key]; r == nil {
				r = &store.AttributionRow{Key: key, Quantity: money.Zero, Amount: money.Zero}
				a.rows[key] = r
			}
			r.Events++
		}
		r.Quantity = r.Quantity.Add(q)
		r.Amount = r.Amount.Add(amt)
	}
	return nil
}

// Rows returns the sums by key in byte order, at most limit of them (≤ 0: all).
func (a *Attributor) Rows(limit int) []store.AttributionRow {
	keys := make([]string, 0, len(a.rows))
	for k := range a.rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]store.AttributionRow, len(keys))
	for i, k := range keys {
		out[i] = *a.rows[k]
	}
	return out
}
