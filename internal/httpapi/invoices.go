package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
)

// invoiceParam is the {id} path value of an invoice route. Invoice IDs share the customer ID
// syntax; anything else cannot name an invoice and is a 400 naming invoiceId.
func invoiceParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !billing.ValidCustomerID(id) {
		return "", problem.Invalidf("invoiceId", "must be an invoice ID: 1 to 256 letters, digits or _ . : @ -")
	}
	return id, nil
}

func (a *API) listInvoices(w http.ResponseWriter, r *http.Request) {
	id, err := customerParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" && !billing.ValidCustomerID(after) {
		a.writeError(w, r, problem.Invalidf("after", "must be an invoice ID: the next of the previous page"))
		return
	}
	limit, err := limitParam(r, 20, 100)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	page, err := a.svc.Invoices(r.Context(), id, after, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// wantsCSV reports whether the Accept header prefers text/csv to JSON: text/csv is listed with
// a quality above 0 and above that of application/json (and of */* when JSON is not listed).
func wantsCSV(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return false
	}
	csvQ, jsonQ, anyQ := -1.0, -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				q = v
			}
		}
		switch mt {
		case "text/csv":
			csvQ = max(csvQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		case "*/*", "application/*":
			anyQ = max(anyQ, q)
		}
	}
	if jsonQ < 0 {
		jsonQ = anyQ
	}
	return csvQ > 0 && csvQ > jsonQ
}

func (a *API) getInvoice(w http.ResponseWriter, r *http.Request) {
	if wantsCSV(r) {
		a.invoiceCSV(w, r)
		return
	}
	id, err := invoiceParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	inv, err := a.svc.Invoice(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

// invoiceCSV answers an invoice's lines with their attribution as CSV (billing.InvoiceCSV).
func (a *API) invoiceCSV(w http.ResponseWriter, r *http.Request) {
	id, err := invoiceParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := a.svc.InvoiceCSV(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.csv"`)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// closeDue closes every period due now (billing.CloseDue) and lists the invoices it issued.
func (a *API) closeDue(w http.ResponseWriter, r *http.Request) {
	issued, err := a.svc.CloseDue(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if issued == nil {
		issued = []billing.FinalInvoice{}
	}
	writeJSON(w, http.StatusOK, struct {
		Issued []billing.FinalInvoice `json:"issued"`
	}{issued})
}

// closePeriodBody is the POST /v1/customers/{id}/periods/close body. periodStart is read as a
// string so that its parse error names it.
type closePeriodBody struct {
	PlanVersionID int64  `json:"planVersionId"`
	PeriodStart   string `json:"periodStart"`
}

// closePeriod issues the final invoice of one period of a customer now, without waiting for
// the grace window. Only a period that started before the customer's open period can be
// closed: the open one still takes events. Closing a closed period returns its invoice.
func (a *API) closePeriod(w http.ResponseWriter, r *http.Request) {
	id, err := customerParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var body closePeriodBody
	if err := a.decodeJSON(w, r, &body); err != nil {
		a.writeError(w, r, err)
		return
	}
	if body.PlanVersionID < 1 {
		a.writeError(w, r, problem.Invalidf("planVersionId", "is required: the id of the plan version the period belongs to (an invoice line's attribution link carries it)"))
		return
	}
	if body.PeriodStart == "" {
		a.writeError(w, r, problem.Invalidf("periodStart", "is required: the period's start, an RFC 3339 time"))
		return
	}
	start, err := time.Parse(time.RFC3339Nano, body.PeriodStart)
	if err != nil {
		a.writeError(w, r, problem.Invalidf("periodStart", "must be an RFC 3339 time such as 2026-11-01T00:00:00Z"))
		return
	}
	c, err := a.svc.GetCustomer(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	subscribed := false
	for _, s := range c.Subscriptions {
		if s.PlanVersionID == body.PlanVersionID && !s.Start.After(start) {
			subscribed = true
		}
	}
	if !subscribed {
		a.writeError(w, r, problem.Invalidf("planVersionId", "customer %q has no subscription to plan version %d starting at or before %s", id, body.PlanVersionID, start.UTC().Format(time.RFC3339)))
		return
	}
	open, err := a.svc.Spend(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !start.Before(open.PeriodStart) {
		a.writeError(w, r, problem.Invalidf("periodStart", "the period is still open (the open period started %s and ends %s); it is closed after it ends and the grace window passes",
			open.PeriodStart.Format(time.RFC3339), open.PeriodEnd.Format(time.RFC3339)))
		return
	}
	inv, err := a.svc.ClosePeriod(r.Context(), store.PeriodKey{CustomerID: id, PlanVersionID: body.PlanVersionID, PeriodStart: start})
	if problem.KindOf(err) == problem.NotFound {
		// The customer and its subscription exist (checked above): what billing did not find
		// is a period starting at periodStart.
		msg := "is not the start of one of the customer's periods"
		if pe := (*problem.Error)(nil); errors.As(err, &pe) {
			msg = pe.Message
		}
		a.writeError(w, r, problem.Invalidf("periodStart", "%s", msg))
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}
