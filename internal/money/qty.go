package money

import (
	"math"

	"github.com/shopspring/decimal"
)

// Qty is an exact quantity. Whole numbers that fit in an int64 are kept as integers, so summing
// token counts never allocates; anything else (fractions, overflow) is held as a Decimal. The
// zero value is 0.
type Qty struct {
	n   int64
	d   decimal.Decimal
	dec bool
}

// QtyInt returns the quantity n.
func QtyInt(n int64) Qty { return Qty{n: n} }

// QtyOf returns the quantity d, as an integer when it is one that fits.
func QtyOf(d Decimal) Qty {
	if d.IsInteger() {
		bi := d.BigInt()
		if bi.IsInt64() {
			return Qty{n: bi.Int64()}
		}
	}
	return Qty{d: d, dec: true}
}

// ParseQty parses a quantity with Parse's grammar and limits.
func ParseQty(b []byte) (Qty, error) {
	if len(b) > 0 && len(b) <= 18 {
		if v, ok := parseSmallInt(b); ok {
			return Qty{n: v}, nil
		}
	}
	d, err := ParseBytes(b)
	if err != nil {
		return Qty{}, err
	}
	return QtyOf(d), nil
}

// Decimal returns the quantity as a Decimal.
func (q Qty) Decimal() Decimal {
	if q.dec {
		return q.d
	}
	return decimal.NewFromInt(q.n)
}

// IsInt64 reports whether the quantity is held as an integer, and returns it.
func (q Qty) IsInt64() (int64, bool) { return q.n, !q.dec }

// Add returns q + o exactly.
func (q Qty) Add(o Qty) Qty {
	if !q.dec && !o.dec {
		s := q.n + o.n
		// Overflow iff both operands have the same sign and the sum's sign differs.
		if (q.n >= 0) == (o.n >= 0) && (s >= 0) != (q.n >= 0) {
			return QtyOf(decimal.NewFromInt(q.n).Add(decimal.NewFromInt(o.n)))
		}
		return Qty{n: s}
	}
	return QtyOf(q.Decimal().Add(o.Decimal()))
}

// Sub returns q - o exactly.
func (q Qty) Sub(o Qty) Qty {
	if !o.dec && o.n != math.MinInt64 {
		return q.Add(Qty{n: -o.n})
	}
	return QtyOf(q.Decimal().Sub(o.Decimal()))
}

// Cmp compares q and o: -1, 0 or +1.
func (q Qty) Cmp(o Qty) int {
	if !q.dec && !o.dec {
		switch {
		case q.n < o.n:
			return -1
		case q.n > o.n:
			return 1
		}
		return 0
	}
	return q.Decimal().Cmp(o.Decimal())
}

// Sign returns -1, 0 or +1.
func (q Qty) Sign() int {
	if q.dec {
		return q.d.Sign()
	}
	switch {
	case q.n < 0:
		return -1
	case q.n > 0:
		return 1
	}
	return 0
}

// IsZero reports whether q is 0.
func (q Qty) IsZero() bool { return q.Sign() == 0 }

// String prints the quantity in plain decimal notation.
func (q Qty) String() string { return q.Decimal().String() }
