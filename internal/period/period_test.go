package period

import (
	"math/rand/v2"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York without relying on the host's zoneinfo
)

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

func TestParseUnit(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"day", "week", "month", "year"} {
		u, err := ParseUnit(s)
		if err != nil || string(u) != s {
			t.Errorf("ParseUnit(%q) = %q, %v", s, u, err)
		}
	}
	for _, s := range []string{"", "Month", "months", "quarter", "hour"} {
		if u, err := ParseUnit(s); err == nil {
			t.Errorf("ParseUnit(%q) = %q, want an error", s, u)
		}
	}
}

func TestBoundaries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sched  Schedule
		n      int
		expect time.Time
	}{
		{"month 31st: anchor", Schedule{Month, utc(2024, 1, 31, 10, 0)}, 0, utc(2024, 1, 31, 10, 0)},
		{"month 31st: leap February", Schedule{Month, utc(2024, 1, 31, 10, 0)}, 1, utc(2024, 2, 29, 10, 0)},
		{"month 31st: back to March 31", Schedule{Month, utc(2024, 1, 31, 10, 0)}, 2, utc(2024, 3, 31, 10, 0)},
		{"month 31st: April 30", Schedule{Month, utc(2024, 1, 31, 10, 0)}, 3, utc(2024, 4, 30, 10, 0)},
		{"month 31st: May 31 (no drift)", Schedule{Month, utc(2024, 1, 31, 10, 0)}, 4, utc(2024, 5, 31, 10, 0)},
		{"month 31st: next January", Schedule{Month, utc(2024, 1, 31, 10, 0)}, 12, utc(2025, 1, 31, 10, 0)},
		{"month 31st: common February", Schedule{Month, utc(2025, 1, 31, 0, 0)}, 1, utc(2025, 2, 28, 0, 0)},
		{"month 31st: previous December", Schedule{Month, utc(2025, 1, 31, 0, 0)}, -1, utc(2024, 12, 31, 0, 0)},
		{"month 31st: previous November", Schedule{Month, utc(2025, 1, 31, 0, 0)}, -2, utc(2024, 11, 30, 0, 0)},
		{"month 31st: 13 back is a leap February", Schedule{Month, utc(2025, 3, 31, 0, 0)}, -13, utc(2024, 2, 29, 0, 0)},
		{"month 30th: February clamps", Schedule{Month, utc(2026, 1, 30, 0, 0)}, 1, utc(2026, 2, 28, 0, 0)},
		{"month 29th: common February", Schedule{Month, utc(2026, 1, 29, 0, 0)}, 1, utc(2026, 2, 28, 0, 0)},
		{"month 15th", Schedule{Month, utc(2026, 1, 15, 8, 30)}, 11, utc(2026, 12, 15, 8, 30)},
		{"year Feb 29: common year", Schedule{Year, utc(2024, 2, 29, 12, 0)}, 1, utc(2025, 2, 28, 12, 0)},
		{"year Feb 29: back to leap", Schedule{Year, utc(2024, 2, 29, 12, 0)}, 4, utc(2028, 2, 29, 12, 0)},
		{"year Feb 29: before anchor", Schedule{Year, utc(2024, 2, 29, 12, 0)}, -1, utc(2023, 2, 28, 12, 0)},
		{"year Feb 29: century non-leap 2100", Schedule{Year, utc(2096, 2, 29, 0, 0)}, 4, utc(2100, 2, 28, 0, 0)},
		{"year Feb 29: 2000 was leap", Schedule{Year, utc(2004, 2, 29, 0, 0)}, -4, utc(2000, 2, 29, 0, 0)},
		{"week", Schedule{Week, utc(2026, 11, 23, 0, 0)}, 2, utc(2026, 12, 7, 0, 0)},
		{"week backwards over year end", Schedule{Week, utc(2026, 1, 5, 0, 0)}, -1, utc(2025, 12, 29, 0, 0)},
		{"day", Schedule{Day, utc(2026, 2, 27, 6, 0)}, 2, utc(2026, 3, 1, 6, 0)},
		{"day backwards", Schedule{Day, utc(2026, 3, 1, 6, 0)}, -1, utc(2026, 2, 28, 6, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.sched.Boundary(tc.n); !got.Equal(tc.expect) {
				t.Errorf("Boundary(%d) = %v, want %v", tc.n, got, tc.expect)
			}
		})
	}
}

func TestAt(t *testing.T) {
	t.Parallel()
	jan31 := Schedule{Month, utc(2024, 1, 31, 10, 0)}
	feb29y := Schedule{Year, utc(2024, 2, 29, 0, 0)}
	cal := func(u Unit) Schedule { return Schedule{u, CalendarAnchor} }
	tests := []struct {
		name       string
		sched      Schedule
		at         time.Time
		start, end time.Time
	}{
		{"anchor instant is the start", jan31, utc(2024, 1, 31, 10, 0), utc(2024, 1, 31, 10, 0), utc(2024, 2, 29, 10, 0)},
		{"one nanosecond before the end", jan31, utc(2024, 2, 29, 10, 0).Add(-1), utc(2024, 1, 31, 10, 0), utc(2024, 2, 29, 10, 0)},
		{"end belongs to the next period", jan31, utc(2024, 2, 29, 10, 0), utc(2024, 2, 29, 10, 0), utc(2024, 3, 31, 10, 0)},
		{"earlier time on the boundary day", jan31, utc(2024, 2, 29, 9, 59), utc(2024, 1, 31, 10, 0), utc(2024, 2, 29, 10, 0)},
		{"April period", jan31, utc(2024, 4, 15, 0, 0), utc(2024, 3, 31, 10, 0), utc(2024, 4, 30, 10, 0)},
		{"April 30 after renewal time", jan31, utc(2024, 4, 30, 11, 0), utc(2024, 4, 30, 10, 0), utc(2024, 5, 31, 10, 0)},
		{"before the anchor", jan31, utc(2024, 1, 15, 0, 0), utc(2023, 12, 31, 10, 0), utc(2024, 1, 31, 10, 0)},
		{"before the anchor across a short month", jan31, utc(2023, 12, 1, 0, 0), utc(2023, 11, 30, 10, 0), utc(2023, 12, 31, 10, 0)},
		{"just before the anchor", jan31, utc(2024, 1, 31, 10, 0).Add(-1), utc(2023, 12, 31, 10, 0), utc(2024, 1, 31, 10, 0)},
		{"far before the anchor", jan31, utc(2019, 2, 28, 12, 0), utc(2019, 2, 28, 10, 0), utc(2019, 3, 31, 10, 0)},
		{"far before the anchor, early on the boundary day", jan31, utc(2019, 2, 28, 9, 0), utc(2019, 1, 31, 10, 0), utc(2019, 2, 28, 10, 0)},
		{"year Feb 29 in a common year", feb29y, utc(2025, 2, 28, 0, 0), utc(2025, 2, 28, 0, 0), utc(2026, 2, 28, 0, 0)},
		{"year Feb 29 the day before renewal", feb29y, utc(2025, 2, 27, 23, 0), utc(2024, 2, 29, 0, 0), utc(2025, 2, 28, 0, 0)},
		{"year Feb 29 into the next leap year", feb29y, utc(2028, 2, 28, 12, 0), utc(2027, 2, 28, 0, 0), utc(2028, 2, 29, 0, 0)},
		{"calendar month", cal(Month), utc(2026, 11, 28, 10, 0), utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0)},
		{"calendar month December", cal(Month), utc(2026, 12, 31, 23, 59), utc(2026, 12, 1, 0, 0), utc(2027, 1, 1, 0, 0)},
		{"calendar year", cal(Year), utc(2026, 11, 28, 10, 0), utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0)},
		{"calendar day", cal(Day), utc(2026, 11, 28, 10, 0), utc(2026, 11, 28, 0, 0), utc(2026, 11, 29, 0, 0)},
		{"calendar week starts Monday (Saturday)", cal(Week), utc(2026, 11, 28, 10, 0), utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0)},
		{"calendar week on Monday midnight", cal(Week), utc(2026, 11, 23, 0, 0), utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0)},
		{"calendar week Sunday night", cal(Week), utc(2026, 11, 29, 23, 59), utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0)},
		{"calendar week before the calendar anchor", cal(Week), utc(2000, 12, 31, 12, 0), utc(2000, 12, 25, 0, 0), utc(2001, 1, 1, 0, 0)},
		{"calendar month before the calendar anchor", cal(Month), utc(1999, 2, 14, 0, 0), utc(1999, 2, 1, 0, 0), utc(1999, 3, 1, 0, 0)},
		{"calendar day, other zone, is UTC midnight", cal(Day), time.Date(2026, 11, 28, 1, 0, 0, 0, time.FixedZone("X", 3*3600)), utc(2026, 11, 27, 0, 0), utc(2026, 11, 28, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.sched.At(tc.at)
			if !p.Start.Equal(tc.start) || !p.End.Equal(tc.end) {
				t.Fatalf("At(%v) = [%v, %v), want [%v, %v)", tc.at, p.Start, p.End, tc.start, tc.end)
			}
			if !p.Contains(tc.at) {
				t.Errorf("period [%v, %v) does not contain %v", p.Start, p.End, tc.at)
			}
			if !p.Contains(p.Start) {
				t.Error("Start is not inside its period")
			}
			if p.Contains(p.End) {
				t.Error("End is inside its period")
			}
			i := tc.sched.Index(tc.at)
			if b := tc.sched.Boundary(i); !b.Equal(p.Start) {
				t.Errorf("Boundary(Index) = %v, want Start %v", b, p.Start)
			}
			if b := tc.sched.Boundary(i + 1); !b.Equal(p.End) {
				t.Errorf("Boundary(Index+1) = %v, want End %v", b, p.End)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	t.Parallel()
	jan31 := Schedule{Month, utc(2024, 1, 31, 10, 0)}
	tests := []struct {
		name string
		at   time.Time
		want int
	}{
		{"anchor", utc(2024, 1, 31, 10, 0), 0},
		{"just before the anchor", utc(2024, 1, 31, 9, 59), -1},
		{"second period", utc(2024, 2, 29, 10, 0), 1},
		{"a year on", utc(2025, 1, 31, 10, 0), 12},
		{"a year back", utc(2023, 1, 31, 10, 0), -12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := jan31.Index(tc.at); got != tc.want {
				t.Errorf("Index(%v) = %d, want %d", tc.at, got, tc.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	t.Parallel()
	p := Period{Start: utc(2026, 11, 1, 0, 0), End: utc(2026, 12, 1, 0, 0)}
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"start", p.Start, true},
		{"middle", utc(2026, 11, 15, 0, 0), true},
		{"last nanosecond", p.End.Add(-1), true},
		{"end", p.End, false},
		{"before", p.Start.Add(-1), false},
		{"start in another zone", p.Start.In(time.FixedZone("Y", -5*3600)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := p.Contains(tc.at); got != tc.want {
				t.Errorf("Contains(%v) = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

// TestKeepsTimeOfDayAndLocation checks that boundaries keep the anchor's wall-clock time and
// location across a daylight-saving change.
func TestKeepsTimeOfDayAndLocation(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// DST starts on Sunday 8 March 2026 in New York: that day has 23 hours.
	tests := []struct {
		name  string
		sched Schedule
		at    time.Time
		start time.Time
		end   time.Time
	}{
		{"day across spring forward", Schedule{Day, time.Date(2026, 3, 1, 0, 0, 0, 0, ny)},
			time.Date(2026, 3, 8, 23, 30, 0, 0, ny), time.Date(2026, 3, 8, 0, 0, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny)},
		{"week across spring forward", Schedule{Week, time.Date(2026, 3, 2, 9, 0, 0, 0, ny)},
			time.Date(2026, 3, 9, 8, 30, 0, 0, ny), time.Date(2026, 3, 2, 9, 0, 0, 0, ny), time.Date(2026, 3, 9, 9, 0, 0, 0, ny)},
		{"month across spring forward", Schedule{Month, time.Date(2026, 1, 31, 9, 0, 0, 0, ny)},
			time.Date(2026, 3, 31, 8, 59, 0, 0, ny), time.Date(2026, 2, 28, 9, 0, 0, 0, ny), time.Date(2026, 3, 31, 9, 0, 0, 0, ny)},
		{"query in UTC", Schedule{Day, time.Date(2026, 3, 1, 0, 0, 0, 0, ny)},
			time.Date(2026, 3, 9, 3, 30, 0, 0, time.UTC), time.Date(2026, 3, 8, 0, 0, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.sched.At(tc.at)
			if !p.Start.Equal(tc.start) || !p.End.Equal(tc.end) {
				t.Fatalf("At(%v) = [%v, %v), want [%v, %v)", tc.at, p.Start, p.End, tc.start, tc.end)
			}
			if p.Start.Location() != ny || p.End.Location() != ny {
				t.Errorf("boundaries are in %v / %v, want the anchor's location", p.Start.Location(), p.End.Location())
			}
		})
	}
}

// TestPeriodsTile checks, for random anchors and instants, that At returns the one period that
// contains the instant, that consecutive periods meet exactly, and that Index agrees with At.
func TestPeriodsTile(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(20, 26))
	units := []Unit{Day, Week, Month, Year}
	base := utc(2020, 1, 1, 0, 0)
	for i := 0; i < 4000; i++ {
		u := units[r.IntN(len(units))]
		// Anchors on days 28 to 31 exercise the clamping most.
		anchor := time.Date(2020+r.IntN(8), time.Month(1+r.IntN(12)), 28+r.IntN(4), r.IntN(24), r.IntN(60), 0, 0, time.UTC)
		s := Schedule{u, anchor}
		at := base.Add(time.Duration(r.Int64N(int64(10 * 365 * 24 * time.Hour))))
		p := s.At(at)
		if !p.Contains(at) {
			t.Fatalf("%v from %v: At(%v) = [%v, %v) does not contain it", u, anchor, at, p.Start, p.End)
		}
		n := s.Index(at)
		if !s.Boundary(n).Equal(p.Start) || !s.Boundary(n+1).Equal(p.End) {
			t.Fatalf("%v from %v: Index(%v) = %d disagrees with At", u, anchor, at, n)
		}
		next := s.At(p.End)
		if !next.Start.Equal(p.End) {
			t.Fatalf("%v from %v: the period after [%v, %v) starts at %v", u, anchor, p.Start, p.End, next.Start)
		}
		if s.Index(p.End) != n+1 {
			t.Fatalf("%v from %v: Index(End) = %d, want %d", u, anchor, s.Index(p.End), n+1)
		}
		prev := s.At(p.Start.Add(-1))
		if !prev.End.Equal(p.Start) {
			t.Fatalf("%v from %v: the period before [%v, %v) ends at %v", u, anchor, p.Start, p.End, prev.End)
		}
		if u == Month || u == Year {
			// No drift: a boundary's day is the anchor's day, or the month's last day when shorter.
			want := min(anchor.Day(), daysIn(p.Start.Year(), p.Start.Month()))
			if p.Start.Day() != want {
				t.Fatalf("%v from %v: period starts on day %d, want %d", u, anchor, p.Start.Day(), want)
			}
			if p.Start.Hour() != anchor.Hour() || p.Start.Minute() != anchor.Minute() {
				t.Fatalf("%v from %v: boundary %v lost the anchor's time of day", u, anchor, p.Start)
			}
		}
	}
}
