package codec

import (
	"math"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

func TestTimeRoundTrip(t *testing.T) {
	for _, tt := range []time.Time{
		{},
		time.Unix(0, 0),
		time.Unix(0, math.MinInt64+1),
		time.Unix(0, math.MaxInt64),
		time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.FixedZone("X", -5*3600)),
	} {
		n, err := Time(tt)
		if err != nil {
			t.Fatalf("Time(%v): %v", tt, err)
		}
		got := ParseTime(n)
		if !got.Equal(tt) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("round trip %v → %d → %v", tt, n, got)
		}
	}
	if n, _ := Time(time.Time{}); n != ZeroTime {
		t.Errorf("zero time = %d, want %d", n, int64(ZeroTime))
	}
	for _, bad := range []time.Time{
		time.Unix(0, math.MinInt64),
		time.Unix(0, math.MaxInt64).Add(time.Nanosecond),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if n, err := Time(bad); err == nil {
			t.Errorf("Time(%v) = %d, want an error", bad, n)
		}
	}
}

func TestDecimalRoundTrip(t *testing.T) {
	for _, s := range []string{"0", "-0.000000000000000000000000000001", "12345678901234567890.5", "1e-20", "-3"} {
		d := money.MustParse(s)
		got, err := ParseDecimal(Decimal(d))
		if err != nil || !got.Equal(d) {
			t.Errorf("%s → %q → %v, %v", s, Decimal(d), got, err)
		}
	}
	if _, err := ParseDecimal("NaN"); err == nil {
		t.Error("parsed NaN")
	}
}

func TestText(t *testing.T) {
	for s, ok := range map[string]bool{"": true, "café": true, "a\x00b": false, "\xff": false} {
		if err := Text("f", s); (err == nil) != ok {
			t.Errorf("Text(%q) = %v", s, err)
		}
	}
}

func TestLinesRoundTrip(t *testing.T) {
	if s, err := Lines(nil); s != nil || err != nil {
		t.Fatalf("no lines = %v, %v; want NULL", s, err)
	}
	in := []store.RatedLine{
		{Charge: "sonnet_in", Group: "claude-sonnet-4-6", Type: "usage", Quantity: money.MustParse("1500"),
			Amount: money.MustParse("0.000000000123456789"), Cost: money.MustParse("0.0045")},
		{Charge: "x:12:y", Group: "", Type: "café ☕", Quantity: money.MustParse("-3"),
			Amount: money.MustParse("-12345678901234567890.00000000000000000001"), Cost: money.MustParse("0")},
		{},
	}
	s, err := Lines(in)
	if err != nil || s == nil {
		t.Fatalf("Lines: %v", err)
	}
	out, err := ParseLines(*s)
	if err != nil {
		t.Fatalf("ParseLines(%q): %v", *s, err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d lines back, want %d", len(out), len(in))
	}
	for i := range in {
		w, g := in[i], out[i]
		if g.Charge != w.Charge || g.Group != w.Group || g.Type != w.Type ||
			g.Quantity.String() != w.Quantity.String() || g.Amount.String() != w.Amount.String() ||
			g.Cost.String() != w.Cost.String() {
			t.Errorf("line %d = %+v, want %+v", i, g, w)
		}
	}
	if _, err := Lines([]store.RatedLine{{Charge: "a\x00b"}}); err == nil {
		t.Error("Lines accepted a NUL byte")
	}
	for _, bad := range []string{"x", "3:ab", "1:a1:b1:c1:11:1", "99999999999:a", "-1:a", "1:a1:b1:c1:x1:1:1:1"} {
		if _, err := ParseLines(bad); err == nil {
			t.Errorf("ParseLines(%q) succeeded", bad)
		}
	}
}

func TestAttributor(t *testing.T) {
	enc := func(ls ...store.RatedLine) *string {
		s, err := Lines(ls)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	l := func(charge, amount string) store.RatedLine {
		return store.RatedLine{Charge: charge, Type: "usage", Quantity: money.MustParse("1"), Amount: money.MustParse(amount)}
	}
	a := NewAttributor(store.AttributionParams{Charge: "c", Type: "usage", After: "b"})
	for _, e := range []struct {
		key   string
		lines *string
	}{
		{"a", enc(l("c", "1"))},                    // at or before the cursor
		{"b", enc(l("c", "1"))},                    // at the cursor
		{"d", enc(l("c", "0.1"), l("c", "0.2"))},   // one event, two lines
		{"c", enc(l("x", "5"), l("c", "-0.3"))},    // other charge ignored
		{"d", enc(l("c", "0.000000000000000001"))}, // second event of d
		{"e", enc(l("x", "1"))},                    // no matching line: no row
		{"f", nil},
	} {
		if err := a.Add(e.key, e.lines); err != nil {
			t.Fatal(err)
		}
	}
	rows := a.Rows(0)
	if len(rows) != 2 || rows[0].Key != "c" || rows[1].Key != "d" {
		t.Fatalf("rows = %+v", rows)
	}
	if rows[0].Events != 1 || rows[0].Amount.String() != "-0.3" || rows[0].Quantity.String() != "1" {
		t.Errorf("c = %+v", rows[0])
	}
	if rows[1].Events != 2 || rows[1].Amount.String() != "0.300000000000000001" || rows[1].Quantity.String() != "3" {
		t.Errorf("d = %+v", rows[1])
	}
	if got := a.Rows(1); len(got) != 1 || got[0].Key != "c" {
		t.Errorf("limit 1 = %+v", got)
	}
}
