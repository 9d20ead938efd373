package money

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // Decimal.String() of the exact value
	}{
		{"zero", "0", "0"},
		{"negative zero", "-0", "0"},
		{"small int", "1500", "1500"},
		{"negative int", "-42", "-42"},
		{"18 digit int fast path", "999999999999999999", "999999999999999999"},
		{"19 digit int slow path", "1234567890123456789", "1234567890123456789"},
		{"30 digit int", "123456789012345678901234567890", "123456789012345678901234567890"},
		{"fraction", "3.14", "3.14"},
		{"trailing zeros kept exact", "200.10", "200.1"},
		{"zero fraction", "0.000", "0"},
		{"negative fraction", "-0.5", "-0.5"},
		{"exponent", "1e3", "1000"},
		{"upper exponent", "1E3", "1000"},
		{"exponent plus", "2.5e+2", "250"},
		{"exponent minus", "25e-3", "0.025"},
		{"fraction and exponent", "1.5e-6", "0.0000015"},
		{"tiny at MaxScale", "1e-30", "0.000000000000000000000000000001"},
		{"trailing zeros do not count against scale", "100e-31", "0.00000000000000000000000000001"},
		{"zero with a huge negative exponent", "0e-50", "0"},
		{"40 significant digits", "123456789012345678901234567890.1234567890", "123456789012345678901234567890.123456789"},
		{"MaxDigits significant digits with leading zeros", "0.000" + strings.Repeat("1", 27), "0.000" + strings.Repeat("1", 27)},
		{"per-token price", "0.000003", "0.000003"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, parse := range []struct {
				name string
				fn   func(string) (Decimal, error)
			}{
				{"Parse", Parse},
				{"ParseBytes", func(s string) (Decimal, error) { return ParseBytes([]byte(s)) }},
			} {
				got, err := parse.fn(tc.in)
				if err != nil {
					t.Fatalf("%s(%q): unexpected error %v", parse.name, tc.in, err)
				}
				if got.String() != tc.want {
					t.Errorf("%s(%q) = %s, want %s", parse.name, tc.in, got.String(), tc.want)
				}
				if !got.Equal(decimal.RequireFromString(tc.want)) {
					t.Errorf("%s(%q) = %s, not equal to %s", parse.name, tc.in, got, tc.want)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrSyntax},
		{"NaN", "NaN", ErrSyntax},
		{"nan lower", "nan", ErrSyntax},
		{"Infinity", "Infinity", ErrSyntax},
		{"Inf", "Inf", ErrSyntax},
		{"negative Inf", "-Inf", ErrSyntax},
		{"leading plus", "+1", ErrSyntax},
		{"trailing point", "1.", ErrSyntax},
		{"leading point", ".5", ErrSyntax},
		{"negative leading point", "-.5", ErrSyntax},
		{"hex", "0x10", ErrSyntax},
		{"leading space", " 1", ErrSyntax},
		{"trailing space", "1 ", ErrSyntax},
		{"inner space", "1 000", ErrSyntax},
		{"newline", "1\n", ErrSyntax},
		{"lone minus", "-", ErrSyntax},
		{"double minus", "--1", ErrSyntax},
		{"exponent without digits", "1e", ErrSyntax},
		{"exponent sign without digits", "1e+", ErrSyntax},
		{"two points", "1.2.3", ErrSyntax},
		{"comma", "1,5", ErrSyntax},
		{"underscore", "1_000", ErrSyntax},
		{"letters", "abc", ErrSyntax},
		{"trailing garbage", "12abc", ErrSyntax},
		{"huge exponent", "1e999999999", ErrRange},
		{"huge negative exponent", "1e-999999999", ErrRange},
		{"exponent beyond MaxIntDig", "1e30", ErrRange},
		{"31 integer digits", "1" + strings.Repeat("0", 30), ErrRange},
		{"scale beyond MaxScale", "1e-31", ErrRange},
		{"31 fraction digits", "0." + strings.Repeat("0", 30) + "1", ErrRange},
		{"41 significant digits", "1234567890123456789012345678901.2345678901", ErrRange},
		{"41 significant fraction digits", "0." + strings.Repeat("1", 41), ErrRange},
		{"overlong integer", strings.Repeat("9", 100), ErrRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := Parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%q) = %v, %v; want error %v", tc.in, d, err, tc.want)
			}
			if _, err := ParseBytes([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Errorf("ParseBytes(%q) error = %v; want %v", tc.in, err, tc.want)
			}
			if _, err := ParseQty([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Errorf("ParseQty(%q) error = %v; want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestMustParsePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse(\"x\") did not panic")
		}
	}()
	MustParse("x")
}

// randomDecimalText builds random text in the JSON number grammar within Parse's limits.
func randomDecimalText(r *rand.Rand) string {
	var sb strings.Builder
	if r.IntN(3) == 0 {
		sb.WriteByte('-')
	}
	intLen := 1 + r.IntN(20)
	if r.IntN(4) == 0 {
		sb.WriteByte('0')
	} else {
		sb.WriteByte(byte('1' + r.IntN(9)))
		for i := 1; i < intLen; i++ {
			sb.WriteByte(byte('0' + r.IntN(10)))
		}
	}
	if r.IntN(2) == 0 {
		sb.WriteByte('.')
		for i := 0; i < 1+r.IntN(15); i++ {
			sb.WriteByte(byte('0' + r.IntN(10)))
		}
	}
	if r.IntN(4) == 0 {
		sb.WriteString([]string{"e", "E", "e+", "e-"}[r.IntN(4)])
		fmt.Fprint(&sb, r.IntN(8))
	}
	return sb.String()
}

func TestParseRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := 0; i < 20000; i++ {
		s := randomDecimalText(r)
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrRange) {
				t.Fatalf("Parse(%q): %v (only range errors are expected for grammatical input)", s, err)
			}
			continue
		}
		accepted++
		want := decimal.RequireFromString(s)
		if !d.Equal(want) {
			t.Fatalf("Parse(%q) = %s, want %s", s, d, want)
		}
		back, err := Parse(d.String())
		if err != nil {
			t.Fatalf("Parse(String(Parse(%q)) = %q): %v", s, d.String(), err)
		}
		if !back.Equal(d) {
			t.Fatalf("round trip of %q: %s != %s", s, back, d)
		}
	}
	if accepted < 10000 {
		t.Fatalf("only %d of 20000 random values were accepted; the generator is off", accepted)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "-0", "1500", "3.14", "1e3", "1.5e-6", "200.10", "NaN", "+1", "1.", ".5",
		"0x10", " 1", "1e999999999", "1e-30", "1e30", "-", "", "123456789012345678901234567890.1234567890",
		"0e-99", "9999999999999999999", "1E+0000005"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("Parse(%q): unexpected error kind %v", s, err)
			}
			return
		}
		if want, err := decimal.NewFromString(s); err == nil && !want.Equal(d) {
			t.Fatalf("Parse(%q) = %s, but the text means %s", s, d, want)
		}
		back, err := Parse(d.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %s, which does not parse back: %v", s, d, err)
		}
		if !back.Equal(d) {
			t.Fatalf("round trip of %q: %s != %s", s, back, d)
		}
		q, err := ParseQty([]byte(s))
		if err != nil || !q.Decimal().Equal(d) {
			t.Fatalf("ParseQty(%q) = %s, %v; Parse gave %s", s, q, err, d)
		}
	})
}

func TestMinMax(t *testing.T) {
	t.Parallel()
	a, b := MustParse("1.5"), MustParse("-2")
	if got := Min(a, b); !got.Equal(b) {
		t.Errorf("Min = %s", got)
	}
	if got := Max(a, b); !got.Equal(a) {
		t.Errorf("Max = %s", got)
	}
	if got := Min(b, a); !got.Equal(b) {
		t.Errorf("Min swapped = %s", got)
	}
	if got := Max(b, a); !got.Equal(a) {
		t.Errorf("Max swapped = %s", got)
	}
}

func TestLookupCurrency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code  string
		minor int32
		ok    bool
	}{
		{"USD", 2, true},
		{"EUR", 2, true},
		{"JPY", 0, true},
		{"KRW", 0, true},
		{"KWD", 3, true},
		{"BHD", 3, true},
		{"CLF", 4, true},
		{"XXX", 0, false},
		{"usd", 0, false},
		{"", 0, false},
		{"US", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			c, err := LookupCurrency(tc.code)
			if !tc.ok {
				if err == nil {
					t.Fatalf("LookupCurrency(%q) = %+v, want an error", tc.code, c)
				}
				if !strings.Contains(err.Error(), "unknown ISO 4217 currency") {
					t.Errorf("error %q does not say the currency is unknown", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Code != tc.code || c.Minor != tc.minor {
				t.Errorf("LookupCurrency(%q) = %+v, want minor %d", tc.code, c, tc.minor)
			}
		})
	}
}

func mustCurrency(t testing.TB, code string) Currency {
	t.Helper()
	c, err := LookupCurrency(code)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundHalfAwayFromZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cur, in, want string
	}{
		{"USD", "0", "0"},
		{"USD", "1.234", "1.23"},
		{"USD", "1.235", "1.24"},
		{"USD", "1.245", "1.25"}, // not banker's rounding
		{"USD", "1.2349999", "1.23"},
		{"USD", "1.2350000001", "1.24"},
		{"USD", "0.005", "0.01"},
		{"USD", "0.0049999999999999999999", "0"},
		{"USD", "-0.005", "-0.01"},
		{"USD", "-1.235", "-1.24"},
		{"USD", "-1.234", "-1.23"},
		{"USD", "-1.2349", "-1.23"},
		{"USD", "2.5", "2.5"},
		{"USD", "200.0045", "200"},
		{"USD", "999999.995", "1000000"},
		{"JPY", "0.5", "1"},
		{"JPY", "1.5", "2"},
		{"JPY", "2.5", "3"},
		{"JPY", "-2.5", "-3"},
		{"JPY", "-0.4999", "0"},
		{"JPY", "123.49", "123"},
		{"KWD", "1.0005", "1.001"},
		{"KWD", "1.0004999", "1"},
		{"KWD", "-1.0005", "-1.001"},
		{"KWD", "0.0015", "0.002"},
		{"KWD", "0.0025", "0.003"},
	}
	for _, tc := range tests {
		t.Run(tc.cur+"/"+tc.in, func(t *testing.T) {
			t.Parallel()
			c := mustCurrency(t, tc.cur)
			got := Round(MustParse(tc.in), c)
			if !got.Equal(MustParse(tc.want)) {
				t.Errorf("Round(%s, %s) = %s, want %s", tc.in, tc.cur, got, tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cur, in, want string
	}{
		{"USD", "0", "0.00"},
		{"USD", "200.0045", "200.00"},
		{"USD", "200.005", "200.01"},
		{"USD", "-200.005", "-200.01"},
		{"USD", "1e3", "1000.00"},
		{"USD", "0.1", "0.10"},
		{"JPY", "1234.5", "1235"},
		{"JPY", "-0.5", "-1"},
		{"KWD", "1.5", "1.500"},
		{"KWD", "0.0005", "0.001"},
		{"CLF", "1.00005", "1.0001"},
	}
	for _, tc := range tests {
		t.Run(tc.cur+"/"+tc.in, func(t *testing.T) {
			t.Parallel()
			if got := Format(MustParse(tc.in), mustCurrency(t, tc.cur)); got != tc.want {
				t.Errorf("Format(%s, %s) = %q, want %q", tc.in, tc.cur, got, tc.want)
			}
		})
	}
}

func decs(ss ...string) []Decimal {
	out := make([]Decimal, len(ss))
	for i, s := range ss {
		out[i] = MustParse(s)
	}
	return out
}

func TestAllocate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		total   string
		weights []string
		places  int32
		want    []string
	}{
		{"even split", "10.00", []string{"1", "1"}, 2, []string{"5", "5"}},
		{"thirds, tie to the earliest", "1.00", []string{"1", "1", "1"}, 2, []string{"0.34", "0.33", "0.33"}},
		{"two leftover cents to the two earliest", "0.02", []string{"1", "1", "1"}, 2, []string{"0.01", "0.01", "0"}},
		{"largest remainder wins over position", "1.00", []string{"1", "2"}, 2, []string{"0.33", "0.67"}},
		{"four leftovers among six equal parts", "1.00", []string{"1", "1", "1", "1", "1", "1"}, 2, []string{"0.17", "0.17", "0.17", "0.17", "0.16", "0.16"}},
		{"leftover to the largest fraction, not the first", "100", []string{"1", "2", "4"}, 0, []string{"14", "29", "57"}},
		{"negative total mirrors", "-1.00", []string{"1", "1", "1"}, 2, []string{"-0.34", "-0.33", "-0.33"}},
		{"negative total largest remainder", "-1.00", []string{"1", "2"}, 2, []string{"-0.33", "-0.67"}},
		{"zero weight gets nothing", "1.00", []string{"0", "1", "1"}, 2, []string{"0", "0.5", "0.5"}},
		{"zero weight gets no leftover", "0.01", []string{"0", "1", "1"}, 2, []string{"0", "0.01", "0"}},
		{"all weights zero: whole to first", "7.5", []string{"0", "0"}, 2, []string{"7.5", "0"}},
		{"single part", "3.14159", []string{"5"}, 2, []string{"3.14159"}},
		{"total finer than places keeps its precision", "0.005", []string{"1", "1"}, 2, []string{"0.003", "0.002"}},
		{"zero total", "0", []string{"1", "2", "3"}, 2, []string{"0", "0", "0"}},
		{"token weights", "0.0045", []string{"1500", "800", "500"}, 2, []string{"0.0024", "0.0013", "0.0008"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parts, err := Allocate(MustParse(tc.total), decs(tc.weights...), tc.places)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != len(tc.want) {
				t.Fatalf("got %d parts, want %d", len(parts), len(tc.want))
			}
			sum := Zero
			for i, p := range parts {
				sum = sum.Add(p)
				if !p.Equal(MustParse(tc.want[i])) {
					t.Errorf("part %d = %s, want %s (all: %v)", i, p, tc.want[i], parts)
				}
			}
			if !sum.Equal(MustParse(tc.total)) {
				t.Errorf("parts add up to %s, want %s", sum, tc.total)
			}
		})
	}
}

func TestAllocateErrors(t *testing.T) {
	t.Parallel()
	if _, err := Allocate(MustParse("1"), nil, 2); err == nil {
		t.Error("Allocate with no parts: want an error")
	}
	if _, err := Allocate(MustParse("1"), decs("1", "-1"), 2); err == nil {
		t.Error("Allocate with a negative weight: want an error")
	}
}

// TestAllocateProperty checks, for random totals and weights, that the parts add up exactly,
// are multiples of the unit, have the total's sign and lie within one unit of the exact share.
func TestAllocateProperty(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 3000; i++ {
		places := int32(r.IntN(5))
		total := decimal.New(r.Int64N(2_000_000_000)-1_000_000_000, -int32(r.IntN(7)))
		n := 1 + r.IntN(8)
		weights := make([]Decimal, n)
		for j := range weights {
			switch r.IntN(4) {
			case 0:
				weights[j] = Zero
			default:
				weights[j] = decimal.New(r.Int64N(1_000_000), -int32(r.IntN(4)))
			}
		}
		parts, err := Allocate(total, weights, places)
		if err != nil {
			t.Fatal(err)
		}
		effPlaces := max(places, -total.Exponent())
		unit := decimal.New(1, -effPlaces)
		wsum := Zero
		for _, w := range weights {
			wsum = wsum.Add(w)
		}
		sum := Zero
		for j, p := range parts {
			sum = sum.Add(p)
			if !p.Mod(unit).IsZero() {
				t.Fatalf("case %d: part %s is not a multiple of %s", i, p, unit)
			}
			if p.Sign()*total.Sign() < 0 {
				t.Fatalf("case %d: part %s has the wrong sign for total %s", i, p, total)
			}
			if wsum.IsZero() {
				continue
			}
			exact := total.Mul(weights[j]).DivRound(wsum, 40)
			if p.Sub(exact).Abs().GreaterThanOrEqual(unit) {
				t.Fatalf("case %d: part %s is not within %s of the exact share %s (total %s weights %v)", i, p, unit, exact, total, weights)
			}
			if weights[j].IsZero() && !p.IsZero() {
				t.Fatalf("case %d: zero weight got %s", i, p)
			}
		}
		if !sum.Equal(total) {
			t.Fatalf("case %d: parts %v of %s (weights %v, places %d) add up to %s", i, parts, total, weights, places, sum)
		}
	}
}

func TestNanos(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1", 1_000_000_000, true},
		{"0.0000000015", 2, true},   // half away from zero
		{"-0.0000000015", -2, true}, // half away from zero
		{"0.0000000014", 1, true},
		{"9223372036.854775807", 9223372036854775807, true},
		{"9223372036.854775808", 0, false},
		{"-9223372036.854775808", 0, false},
	} {
		got, ok := ToNanos(MustParse(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("ToNanos(%s) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
		if ok && c.in != "0.0000000015" && c.in != "-0.0000000015" && c.in != "0.0000000014" && !FromNanos(got).Equal(MustParse(c.in)) {
			t.Errorf("FromNanos(%d) = %s, want %s", got, FromNanos(got), c.in)
		}
	}
}
