// Package problem is Levy's closed set of error kinds. Domain code returns *Error values (or
// wraps the sentinel kinds); the HTTP layer maps each kind to one status code in one table and
// renders RFC 9457 problem documents. Anything else is an internal error: its details go to the
// log, never to the client.
package problem

import (
	"errors"
	"fmt"
)

// Kind classifies an error for clients.
type Kind int

// The kinds.
const (
	Internal Kind = iota
	Invalid
	NotFound
	Conflict
	Unauthorized
	Forbidden
	TooLarge
	Unsupported
	QuotaExceeded
	Unavailable
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not_found"
	case Conflict:
		return "conflict"
	case Unauthorized:
		return "unauthorized"
	case Forbidden:
		return "forbidden"
	case TooLarge:
		return "too_large"
	case Unsupported:
		return "unsupported_media_type"
	case QuotaExceeded:
		return "quota_exceeded"
	case Unavailable:
		return "unavailable"
	}
	return "internal"
}

// Field names one bad input field. Index is the event's position in a batch (nil outside one).
type Field struct {
	Index   *int   `json:"index,omitempty"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error a client may see.
type Error struct {
	Kind    Kind
	Message string
	Fields  []Field
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (%s: %s)", e.Message, e.Fields[0].Field, e.Fields[0].Message)
}

// New returns an error of a kind.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Invalidf returns an Invalid error about one field.
func Invalidf(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Kind: Invalid, Message: field + ": " + msg, Fields: []Field{{Field: field, Message: msg}}}
}

// At returns a pointer to a batch index, for Field.Index.
func At(i int) *int { return &i }

// KindOf returns the kind of err (Internal when it is not an *Error).
func KindOf(err error) Kind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return Internal
}
