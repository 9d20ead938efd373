package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/problem"
)

// minStoredTime and maxStoredTime bound the times the stores keep (int64 nanoseconds since
// 1970): a time outside them is refused as bad input before it reaches a store.
var (
	minStoredTime = time.Unix(0, math.MinInt64).UTC()
	maxStoredTime = time.Unix(0, math.MaxInt64).UTC()
)

// customerParam is the {id} path value of a customer route, checked against the customer ID
// syntax so a malformed ID is a 400 naming customerId rather than a lookup.
func customerParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !billing.ValidCustomerID(id) {
		return "", problem.Invalidf("customerId", "must be 1 to 256 letters, digits or _ . : @ -")
	}
	return id, nil
}

// seqCursor reads a numeric page cursor (the `next` of the previous page): absent is 0, the
// start; anything but a whole number ≥ 0 is an error naming the parameter.
func seqCursor(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, problem.Invalidf(name, "must be a whole number ≥ 0: the next of the previous page")
	}
	return n, nil
}

// pageParams reads a customer route's ID and its numeric cursor and page size.
func pageParams(r *http.Request) (id string, after int64, limit int, err error) {
	if id, err = customerParam(r); err != nil {
		return
	}
	if after, err = seqCursor(r, "after"); err != nil {
		return
	}
	limit, err = limitParam(r, 100, 1000)
	return
}

func (a *API) tier(w http.ResponseWriter, r *http.Request) {
	id, err := customerParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	st, err := a.svc.Tier(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) tierTransitions(w http.ResponseWriter, r *http.Request) {
	id, after, limit, err := pageParams(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	page, err := a.svc.TierTransitions(r.Context(), id, after, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// createGrant adds a credit grant. It answers 201 with a new grant, 200 when the same grant
// (same id, same content) was created before, and 409 when the id names another grant. The
// wallet is read first, so a customer whose wallet cannot be read (unknown, or without a
// subscription in force) gets its 404 before anything is stored.
func (a *API) createGrant(w http.ResponseWriter, r *http.Request) {
	id, err := customerParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var in billing.GrantInput
	if err := a.decodeJSON(w, r, &in); err != nil {
		a.writeError(w, r, err)
		return
	}
	// Money travels as decimal strings: a JSON number would invite float rounding on the
	// client's side, and null or an absent amount is no grant at all.
	if len(in.Amount) == 0 || in.Amount[0] != '"' {
		a.writeError(w, r, problem.Invalidf("amount", `is required: a positive decimal string such as "50.00"`))
		return
	}
	if in.ExpiresAt != nil && in.ExpiresAt.After(maxStoredTime) {
		a.writeError(w, r, problem.Invalidf("expiresAt", "must be before %s (times are stored as nanoseconds since 1970)", maxStoredTime.Format(time.RFC3339)))
		return
	}
	before, err := a.svc.Wallet(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	existed := false
	for _, g := range before.Grants {
		if in.ID != "" && g.ID == in.ID {
			existed = true
		}
	}
	g, err := a.svc.CreateGrant(r.Context(), id, in)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, g)
}

func (a *API) wallet(w http.ResponseWriter, r *http.Request) {
	id, err := customerParam(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	wl, err := a.svc.Wallet(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wl)
}

func (a *API) burns(w http.ResponseWriter, r *http.Request) {
	id, after, limit, err := pageParams(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	page, err := a.svc.Burns(r.Context(), id, after, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) notices(w http.ResponseWriter, r *http.Request) {
	id, after, limit, err := pageParams(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	page, err := a.svc.Notices(r.Context(), id, after, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
