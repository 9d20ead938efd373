package money

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

func TestQtyAdd(t *testing.T) {
	t.Parallel()
	big := func(s string) Qty { return QtyOf(decimal.RequireFromString(s)) }
	tests := []struct {
		name    string
		a, b    Qty
		want    string
		wantInt bool // the sum is held as an int64
	}{
		{"zero value", Qty{}, Qty{}, "0", true},
		{"small ints", QtyInt(1500), QtyInt(800), "2300", true},
		{"negative", QtyInt(-5), QtyInt(3), "-2", true},
		{"max plus zero", QtyInt(math.MaxInt64), QtyInt(0), "9223372036854775807", true},
		{"max plus one overflows to decimal", QtyInt(math.MaxInt64), QtyInt(1), "9223372036854775808", false},
		{"max plus max", QtyInt(math.MaxInt64), QtyInt(math.MaxInt64), "18446744073709551614", false},
		{"min minus one", QtyInt(math.MinInt64), QtyInt(-1), "-9223372036854775809", false},
		{"min plus min", QtyInt(math.MinInt64), QtyInt(math.MinInt64), "-18446744073709551616", false},
		{"max plus min", QtyInt(math.MaxInt64), QtyInt(math.MinInt64), "-1", true},
		{"fraction", QtyInt(1), big("0.5"), "1.5", false},
		{"fractions summing to an integer become int", big("0.5"), big("0.5"), "1", true},
		{"decimal back into int64 range", big("9223372036854775808"), QtyInt(-1), "9223372036854775807", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, sum := range []Qty{tc.a.Add(tc.b), tc.b.Add(tc.a)} {
				if sum.String() != tc.want {
					t.Errorf("%s + %s = %s, want %s", tc.a, tc.b, sum, tc.want)
				}
				if _, isInt := sum.IsInt64(); isInt != tc.wantInt {
					t.Errorf("%s + %s: IsInt64 = %v, want %v", tc.a, tc.b, isInt, tc.wantInt)
				}
			}
		})
	}
}

func TestQtySub(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b Qty
		want string
	}{
		{"simple", QtyInt(10), QtyInt(3), "7"},
		{"to negative", QtyInt(3), QtyInt(10), "-7"},
		{"minus MinInt64", QtyInt(0), QtyInt(math.MinInt64), "9223372036854775808"},
		{"MinInt64 minus one", QtyInt(math.MinInt64), QtyInt(1), "-9223372036854775809"},
		{"fraction", QtyOf(MustParse("2.5")), QtyInt(1), "1.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.a.Sub(tc.b); got.String() != tc.want {
				t.Errorf("%s - %s = %s, want %s", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// TestQtyAddMatchesDecimal checks int64 and decimal paths against plain decimal arithmetic.
func TestQtyAddMatchesDecimal(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 5))
	pick := func() Qty {
		switch r.IntN(4) {
		case 0:
			return QtyInt(math.MaxInt64 - r.Int64N(10))
		case 1:
			return QtyInt(math.MinInt64 + r.Int64N(10))
		case 2:
			return QtyOf(decimal.New(r.Int64N(1e12)-5e11, -int32(r.IntN(4))))
		}
		return QtyInt(r.Int64() - math.MaxInt64/2)
	}
	for i := 0; i < 5000; i++ {
		a, b := pick(), pick()
		want := a.Decimal().Add(b.Decimal())
		if got := a.Add(b); !got.Decimal().Equal(want) {
			t.Fatalf("%s + %s = %s, want %s", a, b, got, want)
		}
		want = a.Decimal().Sub(b.Decimal())
		if got := a.Sub(b); !got.Decimal().Equal(want) {
			t.Fatalf("%s - %s = %s, want %s", a, b, got, want)
		}
		if got, want := a.Cmp(b), a.Decimal().Cmp(b.Decimal()); got != want {
			t.Fatalf("Cmp(%s, %s) = %d, want %d", a, b, got, want)
		}
	}
}

func TestQtyCmpSign(t *testing.T) {
	t.Parallel()
	half := QtyOf(MustParse("0.5"))
	overflow := QtyInt(math.MaxInt64).Add(QtyInt(1))
	tests := []struct {
		name string
		a, b Qty
		want int
	}{
		{"equal ints", QtyInt(5), QtyInt(5), 0},
		{"less", QtyInt(4), QtyInt(5), -1},
		{"greater", QtyInt(6), QtyInt(5), 1},
		{"negative", QtyInt(-6), QtyInt(5), -1},
		{"int vs fraction", QtyInt(1), half, 1},
		{"fraction vs int", half, QtyInt(1), -1},
		{"zero value vs 0", Qty{}, QtyInt(0), 0},
		{"int vs equal decimal", QtyInt(2), QtyOf(MustParse("2.0")), 0},
		{"overflowed vs max", overflow, QtyInt(math.MaxInt64), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.a.Cmp(tc.b); got != tc.want {
				t.Errorf("Cmp(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := tc.b.Cmp(tc.a); got != -tc.want {
				t.Errorf("Cmp(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
	for _, tc := range []struct {
		q    Qty
		sign int
	}{{Qty{}, 0}, {QtyInt(3), 1}, {QtyInt(-3), -1}, {half, 1}, {QtyOf(MustParse("-0.5")), -1}, {QtyOf(MustParse("0.0")), 0}} {
		if got := tc.q.Sign(); got != tc.sign {
			t.Errorf("Sign(%s) = %d, want %d", tc.q, got, tc.sign)
		}
		if tc.q.IsZero() != (tc.sign == 0) {
			t.Errorf("IsZero(%s) = %v", tc.q, tc.q.IsZero())
		}
	}
}

func TestQtyOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantInt bool
	}{
		{"42", true},
		{"42.000", true},
		{"1e3", true},
		{"0.5", false},
		{"9223372036854775807", true},
		{"9223372036854775808", false},
		{"-9223372036854775808", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			d := MustParse(tc.in)
			q := QtyOf(d)
			n, isInt := q.IsInt64()
			if isInt != tc.wantInt {
				t.Fatalf("QtyOf(%s).IsInt64() ok = %v, want %v", tc.in, isInt, tc.wantInt)
			}
			if isInt && !decimal.NewFromInt(n).Equal(d) {
				t.Errorf("QtyOf(%s) = %d", tc.in, n)
			}
			if !q.Decimal().Equal(d) {
				t.Errorf("QtyOf(%s).Decimal() = %s", tc.in, q.Decimal())
			}
		})
	}
}

func TestParseQty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantInt bool
		err     error
	}{
		{"1500", "1500", true, nil},
		{"0", "0", true, nil},
		{"-7", "-7", true, nil},
		{"1.5", "1.5", false, nil},
		{"2.000", "2", true, nil},
		{"1e6", "1000000", true, nil},
		{"10000000.5", "10000000.5", false, nil},
		{"123456789012345678901234567890", "123456789012345678901234567890", false, nil},
		{"NaN", "", false, ErrSyntax},
		{"", "", false, ErrSyntax},
		{"1e999999", "", false, ErrRange},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			q, err := ParseQty([]byte(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseQty(%q) = %s, %v; want %v", tc.in, q, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.String() != tc.want {
				t.Errorf("ParseQty(%q) = %s, want %s", tc.in, q, tc.want)
			}
			if _, isInt := q.IsInt64(); isInt != tc.wantInt {
				t.Errorf("ParseQty(%q) IsInt64 = %v, want %v", tc.in, isInt, tc.wantInt)
			}
		})
	}
}

func BenchmarkQtyAddInt(b *testing.B) {
	b.ReportAllocs()
	q := QtyInt(0)
	for i := 0; b.Loop(); i++ {
		q = q.Add(QtyInt(int64(i & 1023)))
	}
	_ = q
}

func TestQtyAddIntDoesNotAllocate(t *testing.T) {
	a, b := QtyInt(1500), QtyInt(800)
	if n := testing.AllocsPerRun(100, func() { a = a.Add(b) }); n != 0 {
		t.Errorf("adding int quantities allocates %v times", n)
	}
}
