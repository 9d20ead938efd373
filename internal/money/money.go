// Package money holds Levy's exact decimal arithmetic: parsing amounts and quantities without
// ever passing through float64, the currencies Levy prices in, the one rounding rule used on
// invoices, and allocation of an amount across parts.
//
// Behaviour at the edges:
//   - Parse accepts the JSON number grammar (optionally quoted by the caller): an optional minus,
//     digits, an optional fraction and an optional exponent. NaN, Infinity, hex, empty strings,
//     spaces and a leading plus are rejected. A value may carry at most MaxDigits significant digits
//     and at most MaxScale digits after the point once its exponent is applied, so a hostile
//     "1e999999999" is an error and never a huge allocation.
//   - Round is the only rounding of money in Levy: half away from zero to the currency's minor
//     unit (ISO 4217 exponent: USD 2, JPY 0, KWD 3). Everything before it is exact.
//   - Allocate splits an amount into parts proportional to weights at a given number of decimal
//     places; the parts always add up exactly to the amount (largest remainder, ties to the
//     earlier part).
package money

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"

	"github.com/shopspring/decimal"
)

// Decimal is the exact decimal type used for every amount and quantity in Levy.
type Decimal = decimal.Decimal

// Limits on parsed values. They bound memory and time on hostile input while leaving room for
// any real price or token count (a trillion tokens at a per-token price of 1e-12 is well inside).
const (
	MaxDigits = 40
	MaxScale  = 30
	MaxIntDig = 30
)

// Zero is the decimal 0.
var Zero = decimal.Zero

// ErrSyntax reports text that is not a decimal number.
var ErrSyntax = errors.New("not a decimal number")

// ErrRange reports a number with too many digits or too large a magnitude.
var ErrRange = errors.New("number out of range")

// Parse reads a decimal from text in the JSON number grammar.
func Parse(s string) (Decimal, error) {
	return ParseBytes([]byte(s))
}

// ParseBytes is Parse for a byte slice. Integers of up to 18 digits take a fast path with no
// big-number work.
func ParseBytes(b []byte) (Decimal, error) {
	if len(b) == 0 {
		return Zero, ErrSyntax
	}
	if v, ok := parseSmallInt(b); ok {
		return decimal.NewFromInt(v), nil
	}
	i := 0
	neg := false
	if b[0] == '-' {
		neg = true
		i++
	}
	start := i
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	intDigits := b[start:i]
	if len(intDigits) == 0 {
		return Zero, ErrSyntax
	}
	var frac []byte
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		frac = b[fs:i]
		if len(frac) == 0 {
			return Zero, ErrSyntax
		}
	}
	exp := int64(0)
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		es := i
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		ds := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == ds || i-ds > 6 {
			if i == ds {
				return Zero, ErrSyntax
			}
			return Zero, ErrRange
		}
		e, err := strconv.ParseInt(string(b[es:i]), 10, 32)
		if err != nil {
			return Zero, ErrSyntax
		}
		exp = e
	}
	if i != len(b) {
		return Zero, ErrSyntax
	}
	// Significant digits: strip leading zeros of the integer part and trailing zeros of the fraction.
	digits := make([]byte, 0, len(intDigits)+len(frac))
	digits = append(digits, intDigits...)
	digits = append(digits, frac...)
	scale := int64(len(frac)) - exp
	k := 0
	for k < len(digits)-1 && digits[k] == '0' {
		k++
	}
	digits = digits[k:]
	for len(digits) > 1 && scale > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		scale--
	}
	if len(digits) > MaxDigits || scale > MaxScale || int64(len(digits))-scale > MaxIntDig {
		if !(len(digits) == 1 && digits[0] == '0') {
			return Zero, ErrRange
		}
		return Zero, nil
	}
	coef, ok := new(big.Int).SetString(string(digits), 10)
	if !ok {
		return Zero, ErrSyntax
	}
	if neg {
		coef.Neg(coef)
	}
	return decimal.NewFromBigInt(coef, int32(-scale)), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseSmallInt parses an optionally negative integer of at most 18 digits.
func parseSmallInt(b []byte) (int64, bool) {
	i := 0
	if b[0] == '-' {
		i = 1
	}
	if len(b)-i == 0 || len(b)-i > 18 {
		return 0, false
	}
	var v int64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if b[0] == '-' {
		v = -v
	}
	return v, true
}

// MustParse parses s or panics; for constants in tests and package initialisation only.
func MustParse(s string) Decimal {
	d, err := Parse(s)
	if err != nil {
		panic(fmt.Sprintf("money.MustParse(%q): %v", s, err))
	}
	return d
}

// Min returns the smaller of a and b.
func Min(a, b Decimal) Decimal {
	if b.LessThan(a) {
		return b
	}
	return a
}

// Max returns the larger of a and b.
func Max(a, b Decimal) Decimal {
	if b.GreaterThan(a) {
		return b
	}
	return a
}

// Currency is an ISO 4217 currency with the number of digits of its minor unit.
type Currency struct {
	Code  string
	Minor int32
}

// minorUnits lists ISO 4217 exponents that differ from 2, plus the common 2-digit currencies.
var minorUnits = map[string]int32{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
	"USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "CNY": 2, "HKD": 2,
	"SGD": 2, "INR": 2, "BRL": 2, "MXN": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2,
	"HUF": 2, "ZAR": 2, "TRY": 2, "ILS": 2, "AED": 2, "SAR": 2, "TWD": 2, "THB": 2, "IDR": 2,
	"MYR": 2, "PHP": 2, "RON": 2, "BGN": 2, "UAH": 2, "NGN": 2, "EGP": 2, "KES": 2, "COP": 2,
	"ARS": 2, "PEN": 2,
}

// LookupCurrency returns the currency for an ISO 4217 code. Unknown three-letter codes are
// rejected rather than guessed.
func LookupCurrency(code string) (Currency, error) {
	m, ok := minorUnits[code]
	if !ok {
		return Currency{}, fmt.Errorf("unknown ISO 4217 currency %q", code)
	}
	return Currency{Code: code, Minor: m}, nil
}

// Round rounds an exact amount to the currency's minor unit, half away from zero. It is the only
// place Levy rounds money.
func Round(d Decimal, c Currency) Decimal {
	return d.Round(c.Minor)
}

// Format prints an amount rounded to the currency's minor unit with exactly that many digits.
func Format(d Decimal, c Currency) string {
	return Round(d, c).StringFixed(c.Minor)
}

// Allocate splits total into len(weights) parts proportional to the weights, each a multiple of
// 10^-places, that add up exactly to total. If total itself has more than places decimal digits,
// its own precision is used instead so the sum stays exact. Weights must be non-negative with a
// positive sum; otherwise the whole total goes to the first part (or an error for no parts).
func Allocate(total Decimal, weights []Decimal, places int32) ([]Decimal, error) {
	n := len(weights)
	if n == 0 {
		return nil, errors.New("allocate: no parts")
	}
	if -total.Exponent() > places {
		places = -total.Exponent()
	}
	sum := Zero
	for _, w := range weights {
		if w.IsNegative() {
			return nil, errors.New("allocate: negative weight")
		}
		sum = sum.Add(w)
	}
	parts := make([]Decimal, n)
	if sum.IsZero() {
		for i := range parts {
			parts[i] = Zero
		}
		parts[0] = total
		return parts, nil
	}
	neg := total.IsNegative()
	abs := total.Abs()
	unit := decimal.New(1, -places)
	units := abs.Shift(places).BigInt() // total in units of 10^-places (exact by construction)
	type rem struct {
		i int
		r *big.Rat
	}
	rems := make([]rem, n)
	assigned := new(big.Int)
	sumRat := sum.Rat()
	for i, w := range weights {
		share := new(big.Rat).Mul(new(big.Rat).SetInt(units), w.Rat())
		share.Quo(share, sumRat)
		fl := new(big.Int).Quo(share.Num(), share.Denom())
		frac := new(big.Rat).Sub(share, new(big.Rat).SetInt(fl))
		rems[i] = rem{i: i, r: frac}
		parts[i] = decimal.NewFromBigInt(fl, -places)
		assigned.Add(assigned, fl)
	}
	left := new(big.Int).Sub(units, assigned).Int64()
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r.Cmp(rems[b].r) > 0 })
	for k := int64(0); k < left; k++ {
		i := rems[k%int64(n)].i
		parts[i] = parts[i].Add(unit)
	}
	if neg {
		for i := range parts {
			parts[i] = parts[i].Neg()
		}
	}
	return parts, nil
}

// nano is the pseudo-currency of the counter store's integer amounts: 10^-9 of the unit.
var nano = Currency{Code: "nano", Minor: 9}

// ToNanos converts an exact amount to integer nanos of the unit, rounded half away from zero by
// Round (amounts finer than a nano are rounded once, here). ok is false when the result does not
// fit an int64.
func ToNanos(d Decimal) (n int64, ok bool) {
	r := Round(d, nano).Shift(9)
	if !r.IsInteger() || r.Abs().GreaterThan(maxInt64) {
		return 0, false
	}
	return r.IntPart(), true
}

// FromNanos converts integer nanos back to an exact amount.
func FromNanos(n int64) Decimal { return decimal.New(n, -9) }

var maxInt64 = decimal.New(math.MaxInt64, 0)
