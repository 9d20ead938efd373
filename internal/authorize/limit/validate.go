package limit

import (
	"fmt"
	"strings"
)

// FieldError names one invalid field of a Request, by its path, and says why.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// InvalidError lists every invalid field of a Request.
type InvalidError struct {
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid authorize request: " + strings.Join(parts, "; ")
}

// Validate reports every field of the request outside its range, as an *InvalidError naming
// each by path ("limits.window", "estimate.tokens", ...), or nil. Decide denies exactly the
// requests Validate rejects, with DimInvalid; call Validate first to tell the client why.
func (r Request) Validate() error {
	var fs []FieldError
	bad := func(field, format string, args ...any) {
		fs = append(fs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	l := r.Limits
	if l.Window < 0 || l.Window > MaxWindowUnits {
		bad("limits.window", "must be between 0 and %d, got %d", MaxWindowUnits, l.Window)
	} else if l.Window == 0 && (l.RequestsPerWindow > 0 || l.TokensPerWindow > 0) {
		bad("limits.window", "must be at least 1 when a rate limit is set")
	}
	rate := func(field string, v int64) {
		switch {
		case v < 0 || v > MaxValue:
			bad(field, "must be between 0 and %d, got %d", MaxValue, v)
		case v > 0 && l.Window >= 1 && l.Window <= MaxWindowUnits && v > MaxWindowUnits/l.Window:
			bad(field, "window × limit must be at most %d, got %d × %d", MaxWindowUnits, l.Window, v)
		}
	}
	rate("limits.requestsPerWindow", l.RequestsPerWindow)
	rate("limits.tokensPerWindow", l.TokensPerWindow)
	count := func(field string, v int64) {
		if v < 0 || v > MaxValue {
			bad(field, "must be between 0 and %d, got %d", MaxValue, v)
		}
	}
	count("limits.monthlyTokens", l.MonthlyTokens)
	count("limits.monthlySpend", l.MonthlySpend)
	count("limits.maxConcurrent", l.MaxConcurrent)
	count("estimate.tokens", r.Estimate.Tokens)
	count("estimate.nanos", r.Estimate.Nanos)
	if r.PeriodEnd < 0 || r.PeriodEnd > MaxTime {
		bad("periodEnd", "must be between 0 and %d, got %d", MaxTime, r.PeriodEnd)
	}
	if fs != nil {
		return &InvalidError{Fields: fs}
	}
	return nil
}

// valid is Validate() == nil without building any error: the hot path's check.
func (r Request) valid() bool {
	l := r.Limits
	if l.Window < 0 || l.Window > MaxWindowUnits {
		return false
	}
	for _, v := range [...]int64{l.RequestsPerWindow, l.TokensPerWindow} {
		if v < 0 || v > MaxValue {
			return false
		}
		if v > 0 && (l.Window == 0 || v > MaxWindowUnits/l.Window) {
			return false
		}
	}
	for _, v := range [...]int64{l.MonthlyTokens, l.MonthlySpend, l.MaxConcurrent, r.Estimate.Tokens, r.Estimate.Nanos} {
		if v < 0 || v > MaxValue {
			return false
		}
	}
	return r.PeriodEnd >= 0 && r.PeriodEnd <= MaxTime
}
