package httpapi

import (
	"net/http"
	"strconv"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/problem"
)

// counterStatus answers how far the counter store has applied the ledger; 503 when the server
// runs without a counter store (levy serve always has one).
func (a *API) counterStatus(w http.ResponseWriter, r *http.Request) {
	st, ok := a.svc.CounterStatus()
	if !ok {
		a.writeError(w, r, problem.New(problem.Unavailable, "this server has no counter store"))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// customerQuery reads the optional customerId query parameter of the counter operations: ""
// means every customer; a named customer must exist (404 otherwise).
func (a *API) customerQuery(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("customerId") {
		return "", nil
	}
	id := q.Get("customerId")
	if !billing.ValidCustomerID(id) {
		return "", problem.Invalidf("customerId", "must be 1 to 256 letters, digits or _ . : @ - (leave it out for every customer)")
	}
	if _, err := a.svc.GetCustomer(r.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}

// checkCounters compares the counter store with the ledger (billing.CheckCounters), repairing
// the customers that drifted when repair=true.
func (a *API) checkCounters(w http.ResponseWriter, r *http.Request) {
	repair := false
	if s := r.URL.Query().Get("repair"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			a.writeError(w, r, problem.Invalidf("repair", "must be true or false"))
			return
		}
		repair = b
	}
	id, err := a.customerQuery(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.svc.CheckCounters(r.Context(), id, repair)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if res.Drifts == nil {
		res.Drifts = []billing.Drift{}
	}
	writeJSON(w, http.StatusOK, res)
}

// rebuildCounters replaces the counters of one customer (or every customer) with what the
// ledger implies.
func (a *API) rebuildCounters(w http.ResponseWriter, r *http.Request) {
	id, err := a.customerQuery(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.svc.RebuildCounters(r.Context(), id); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Rebuilt bool `json:"rebuilt"`
	}{true})
}
