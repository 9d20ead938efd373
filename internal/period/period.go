// Package period computes billing periods: half-open intervals [Start, End) of a day, a week,
// a month or a year, anchored either to the calendar or to a subscription's start.
//
// Behaviour at the edges:
//   - A period contains its Start and not its End; an event at exactly End belongs to the next
//     period.
//   - Month and year boundaries are computed from the anchor, never from the previous boundary,
//     and a day that a month lacks is clamped to that month's last day: a subscription anchored on
//     January 31 renews on February 28 (29 in a leap year), March 31, April 30, ... and never
//     drifts to the 28th. A year anchored on February 29 renews on February 28 in common years.
//   - Boundaries keep the anchor's time of day and location; the calendar anchor is midnight UTC
//     (weeks start on Monday).
//   - Times before the anchor fall into earlier periods computed the same way, so any instant has
//     exactly one period.
package period

import (
	"fmt"
	"time"
)

// Unit is the length of a billing period.
type Unit string

// The period units a plan may use.
const (
	Day   Unit = "day"
	Week  Unit = "week"
	Month Unit = "month"
	Year  Unit = "year"
)

// ParseUnit validates a period unit name.
func ParseUnit(s string) (Unit, error) {
	switch u := Unit(s); u {
	case Day, Week, Month, Year:
		return u, nil
	}
	return "", fmt.Errorf("must be one of day, week, month, year (got %q)", s)
}

// Period is one billing period [Start, End).
type Period struct {
	Start time.Time
	End   time.Time
}

// Contains reports whether t lies in [Start, End).
func (p Period) Contains(t time.Time) bool {
	return !t.Before(p.Start) && t.Before(p.End)
}

// CalendarAnchor is the anchor used when a period follows the calendar: midnight UTC on Monday
// 1 January 2001 (a Monday, so weeks start on Mondays).
var CalendarAnchor = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// Schedule generates the periods of one unit from one anchor.
type Schedule struct {
	Unit   Unit
	Anchor time.Time
}

// Boundary returns the start of the n-th period after the anchor (n may be negative).
func (s Schedule) Boundary(n int) time.Time {
	a := s.Anchor
	switch s.Unit {
	case Day:
		return a.AddDate(0, 0, n)
	case Week:
		return a.AddDate(0, 0, 7*n)
	case Year:
		return addMonthsClamped(a, 12*n)
	default:
		return addMonthsClamped(a, n)
	}
}

// At returns the period containing t.
func (s Schedule) At(t time.Time) Period {
	n := s.estimate(t)
	for s.Boundary(n).After(t) {
		n--
	}
	for !s.Boundary(n + 1).After(t) {
		n++
	}
	return Period{Start: s.Boundary(n), End: s.Boundary(n + 1)}
}

// Index returns the number of the period containing t, counted from the anchor's period 0.
func (s Schedule) Index(t time.Time) int {
	n := s.estimate(t)
	for s.Boundary(n).After(t) {
		n--
	}
	for !s.Boundary(n + 1).After(t) {
		n++
	}
	return n
}

func (s Schedule) estimate(t time.Time) int {
	a := s.Anchor
	t = t.In(a.Location())
	switch s.Unit {
	case Day:
		return int(t.Sub(a) / (24 * time.Hour))
	case Week:
		return int(t.Sub(a) / (7 * 24 * time.Hour))
	case Year:
		return t.Year() - a.Year()
	default:
		return (t.Year()-a.Year())*12 + int(t.Month()) - int(a.Month())
	}
}

// addMonthsClamped adds n months to t, clamping the day to the target month's length.
func addMonthsClamped(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	total := int(m) - 1 + n
	ty := y + floorDiv(total, 12)
	tm := time.Month(mod(total, 12) + 1)
	if last := daysIn(ty, tm); d > last {
		d = last
	}
	hh, mm, ss := t.Clock()
	return time.Date(ty, tm, d, hh, mm, ss, t.Nanosecond(), t.Location())
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, b int) int {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}
