package codec

import (
	"math"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
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
