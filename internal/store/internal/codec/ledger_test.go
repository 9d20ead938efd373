package codec

import (
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

func TestBilled(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.AddDate(0, 1, 0)
	for _, tc := range []struct {
		name      string
		pv        int64
		start     time.Time
		wantNull  bool
		wantError string
	}{
		{"not billed elsewhere", 0, time.Time{}, true, ""},
		{"billed into another period", 2, t1, false, ""},
		{"another plan version, same start", 2, t0, false, ""},
		{"the rated period itself", 1, t0.In(time.FixedZone("X", 3600)), true, ""},
		{"plan version only", 2, time.Time{}, false, "billedPeriodStart"},
		{"start only", 0, t1, false, "billedPlanVersionId"},
		{"start out of range", 2, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), false, "billedPeriodStart"},
	} {
		e := &store.EventRecord{PlanVersionID: 1, PeriodStart: t0, BilledPlanVersionID: tc.pv, BilledPeriodStart: tc.start}
		pv, start, err := Billed(e)
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%s: err = %v, want one naming %s", tc.name, err, tc.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if (pv == nil) != tc.wantNull || (start == nil) != tc.wantNull {
			t.Errorf("%s: columns %v %v, want NULL %v", tc.name, pv, start, tc.wantNull)
		}
		if !tc.wantNull && (*pv != tc.pv || *start != tc.start.UnixNano()) {
			t.Errorf("%s: columns %d %d", tc.name, *pv, *start)
		}
	}
}

func TestAdjuster(t *testing.T) {
	enc := func(ls ...store.RatedLine) *string {
		s, err := Lines(ls)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	l := func(charge, amount string) store.RatedLine {
		return store.RatedLine{Charge: charge, Type: "usage", Quantity: money.MustParse("1"),
			Amount: money.MustParse(amount), Cost: money.MustParse("0.5")}
	}
	a := NewAdjuster()
	for _, e := range []struct {
		pv, start int64
		lines     *string
	}{
		{1, 200, enc(l("b", "1"), l("a", "0.1"), l("b", "2"))}, // b twice: one event
		{1, 100, enc(l("b", "0.000000000000000001"))},
		{2, 100, enc(l("a", "-1"))}, // same start, later plan version
		{1, 200, enc(l("a", "0.2"))},
		{1, 200, nil},
	} {
		if err := a.Add(e.pv, e.start, e.start+50, e.lines); err != nil {
			t.Fatal(err)
		}
	}
	rows := a.Rows()
	want := []struct {
		pv, start      int64
		charge         string
		events         int64
		qty, amt, cost string
	}{
		{1, 100, "b", 1, "1", "0.000000000000000001", "0.5"},
		{2, 100, "a", 1, "1", "-1", "0.5"},
		{1, 200, "a", 2, "2", "0.3", "1"},
		{1, 200, "b", 1, "2", "3", "1"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows = %+v", rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Rated.PlanVersionID != w.pv || r.Rated.Start.UnixNano() != w.start || r.Rated.End.UnixNano() != w.start+50 ||
			r.Charge != w.charge || r.Events != w.events || r.Quantity.String() != w.qty || r.Amount.String() != w.amt ||
			r.Cost.String() != w.cost {
			t.Errorf("row %d = %+v, want %+v", i, r, w)
		}
	}
	if err := a.Add(1, 1, 2, new("3:ab")); err == nil {
		t.Error("Add accepted malformed lines")
	}
}

func TestEncodeCarriedFillsCustomer(t *testing.T) {
	e := &store.EventRecord{Key: "k", ID: "id", CustomerID: "cust", CorrelationID: "corr",
		Burns:       []store.WalletBurn{{GrantID: "g"}, {GrantID: "", CustomerID: "cust"}},
		Transitions: []store.TierTransition{{From: "a", To: "b", Reason: store.ReasonPromotion}},
		Notices:     []store.Notice{{Kind: store.NoticeLowBalance, Data: []byte(`{}`)}},
	}
	c, err := EncodeCarried(0, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.Burns[0].CustomerID != "cust" || c.Burns[1].Ord != 1 || c.Burns[1].EventKey != "k" ||
		c.Transitions[0].CustomerID != "cust" || c.Transitions[0].EventID != "id" ||
		c.Transitions[0].CorrelationID != "corr" || c.Notices[0].CustomerID != "cust" || *c.Notices[0].Data != "{}" {
		t.Errorf("carried = %+v", c)
	}
	// Encoding does not change the record; FillCarried does, once the batch committed.
	if e.Burns[0].CustomerID != "" || e.Transitions[0].EventKey != "" {
		t.Errorf("EncodeCarried changed the record: %+v", e)
	}
	e.Seq = 9
	FillCarried(e, []int64{4}, []int64{5})
	if e.Burns[0].EventSeq != 9 || e.Burns[0].CustomerID != "cust" || e.Transitions[0].ID != 4 ||
		e.Transitions[0].EventSeq != 9 || e.Transitions[0].EventKey != "k" || e.Notices[0].ID != 5 {
		t.Errorf("filled = %+v", e)
	}
	empty, err := EncodeCarried(0, &store.EventRecord{Key: "k"})
	if err != nil || !empty.Empty() {
		t.Errorf("event carrying nothing = %+v, %v", empty, err)
	}
}

// FuzzParseLines: the decoder never panics, and whatever it accepts encodes back to text it
// decodes to the same lines.
func FuzzParseLines(f *testing.F) {
	for _, seed := range []string{
		"", "9:sonnet_in17:claude-sonnet-4-65:usage4:15006:0.00456:0.0045",
		"1:a0:1:b1:11:21:3", "3:ab", "1:a1:b1:c1:x1:1:1:1", "99999999999:a", "-1:a", "0:0:0:1:01:01:0",
		"1:a0:0:4:1e-51:-1:0",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseLines(s)
		if err != nil {
			return
		}
		if s != "" && len(ls) == 0 {
			t.Fatalf("ParseLines(%q) accepted text without lines", s)
		}
		enc, err := Lines(ls)
		if err != nil {
			// Accepted fields the encoder refuses (invalid UTF-8, NUL): the drivers never store those.
			return
		}
		if enc == nil {
			if len(ls) != 0 {
				t.Fatalf("%d lines encoded as NULL", len(ls))
			}
			return
		}
		back, err := ParseLines(*enc)
		if err != nil || len(back) != len(ls) {
			t.Fatalf("re-encoded %q → %q → %v, %v", s, *enc, back, err)
		}
		for i := range ls {
			a, b := ls[i], back[i]
			if a.Charge != b.Charge || a.Group != b.Group || a.Type != b.Type || !a.Quantity.Equal(b.Quantity) ||
				!a.Amount.Equal(b.Amount) || !a.Cost.Equal(b.Cost) {
				t.Fatalf("line %d changed: %+v → %+v", i, a, b)
			}
		}
	})
}
