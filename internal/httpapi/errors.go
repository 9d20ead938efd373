package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/levyhq/levy/internal/problem"
)

// statusOf is the one table from error kinds to HTTP status codes.
var statusOf = map[problem.Kind]int{
	problem.Internal:      http.StatusInternalServerError,
	problem.Invalid:       http.StatusBadRequest,
	problem.NotFound:      http.StatusNotFound,
	problem.Conflict:      http.StatusConflict,
	problem.Unauthorized:  http.StatusUnauthorized,
	problem.Forbidden:     http.StatusForbidden,
	problem.TooLarge:      http.StatusRequestEntityTooLarge,
	problem.Unsupported:   http.StatusUnsupportedMediaType,
	problem.QuotaExceeded: http.StatusTooManyRequests,
	problem.Unavailable:   http.StatusServiceUnavailable,
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Status    int             `json:"status"`
	Detail    string          `json:"detail,omitempty"`
	Errors    []problem.Field `json:"errors,omitempty"`
	RequestID string          `json:"requestId,omitempty"`
}

// writeError answers with a problem document. Internal errors are logged with their chain and
// reach the client only as a generic message and the request ID.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *problem.Error
	kind := problem.Internal
	if errors.As(err, &pe) {
		kind = pe.Kind
	} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		kind = problem.Unavailable
		pe = problem.New(problem.Unavailable, "the request was canceled or timed out")
	}
	status := statusOf[kind]
	p := Problem{Type: "https://levy.dev/problems/" + kind.String(), Title: http.StatusText(status), Status: status, RequestID: requestID(r.Context())}
	if pe != nil {
		p.Detail = pe.Message
		p.Errors = pe.Fields
	} else {
		p.Detail = "internal error; the request ID identifies it in the server log"
		a.log.Error("request failed", "err", err, "method", r.Method, "path", r.URL.Path, "requestId", p.RequestID)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

// writeJSON encodes v before writing anything, so an encoding failure becomes a 500 rather
// than a 2xx with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Error("encode response", "err", err)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"type":"https://levy.dev/problems/internal","title":"Internal Server Error","status":500,"detail":"the answer could not be encoded"}`+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
