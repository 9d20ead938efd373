package authorize

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/tier"
)

// Window is the rate limits' window in milliseconds: the catalog's rate limits are per minute.
const Window int64 = 60_000

// maxRate is the largest per-minute rate limit the counter store represents exactly
// (limit.MaxWindowUnits / Window, about 18.7 billion); larger limits are enforced as it.
const maxRate = limit.MaxWindowUnits / Window

// The limit names of a customer's overrides, as in the catalog.
var overrideNames = []string{"requestsPerMinute", "tokensPerMinute", "monthlyTokens", "monthlySpend", "maxConcurrent"}

var maxWhole = money.MustParse("9000000000000000000")

// ParseOverrides reads a customer's limit overrides: a JSON object whose keys are limit names
// (requestsPerMinute, tokensPerMinute, monthlyTokens, monthlySpend, maxConcurrent) and whose
// values are numbers or decimal strings, read exactly. Whole-number limits must be integers in
// [0, 9e18], monthlySpend a decimal ≥ 0. A null value, like an absent key, overrides nothing.
// Empty input and the JSON null are no overrides. Every bad field is reported at once as an
// Invalid problem naming it ("limits.requestsPerMinute"); an unknown key is an error, so a typo
// never silently leaves a limit in place.
//
// The result has a non-nil field for each limit overridden; a 0 means "nothing allowed".
func ParseOverrides(data []byte) (catalog.Limits, error) {
	var out catalog.Limits
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return out, problem.Invalidf("limits", "must be an object of limit overrides (%s)", strings.Join(overrideNames, ", "))
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var fields []problem.Field
	bad := func(name, msg string) {
		fields = append(fields, problem.Field{Field: "limits." + name, Message: msg})
	}
	for _, k := range keys {
		v := bytes.TrimSpace(raw[k])
		if string(v) == "null" {
			continue
		}
		text := v
		if len(v) > 0 && v[0] == '"' {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				bad(k, "must be a number or a decimal string")
				continue
			}
			text = []byte(s)
		}
		d, err := money.ParseBytes(text)
		switch k {
		case "monthlySpend":
			if err != nil || d.IsNegative() {
				bad(k, "must be a decimal amount ≥ 0, such as \"500.00\"")
				continue
			}
			out.MonthlySpend = &d
		case "requestsPerMinute", "tokensPerMinute", "monthlyTokens", "maxConcurrent":
			if err != nil || d.IsNegative() || !d.IsInteger() || d.GreaterThan(maxWhole) {
				bad(k, "must be a whole number between 0 and 9000000000000000000")
				continue
			}
			n := d.IntPart()
			switch k {
			case "requestsPerMinute":
				out.RequestsPerMinute = &n
			case "tokensPerMinute":
				out.TokensPerMinute = &n
			case "monthlyTokens":
				out.MonthlyTokens = &n
			case "maxConcurrent":
				out.MaxConcurrent = &n
			}
		default:
			bad(k, "is not a limit (use "+strings.Join(overrideNames, ", ")+")")
		}
	}
	if len(fields) > 0 {
		return catalog.Limits{}, &problem.Error{Kind: problem.Invalid, Message: "invalid limit overrides: " + fields[0].Field + ": " + fields[0].Message, Fields: fields}
	}
	return out, nil
}

// withOverrides returns l with every limit the overrides set replaced.
func withOverrides(l, o catalog.Limits) catalog.Limits {
	if o.RequestsPerMinute != nil {
		l.RequestsPerMinute = o.RequestsPerMinute
	}
	if o.TokensPerMinute != nil {
		l.TokensPerMinute = o.TokensPerMinute
	}
	if o.MonthlyTokens != nil {
		l.MonthlyTokens = o.MonthlyTokens
	}
	if o.MonthlySpend != nil {
		l.MonthlySpend = o.MonthlySpend
	}
	if o.MaxConcurrent != nil {
		l.MaxConcurrent = o.MaxConcurrent
	}
	return l
}

// ToLimit converts a customer's effective limits to the counter store's integers (Window in
// milliseconds, money in nanos via money.ToNanos). An absent limit is 0, which the store reads
// as unlimited. WalletLimited is always set: the store applies it only to a customer that has
// a wallet (any grant), so a prepaid balance limits exactly the customers who have one. Values beyond what the store represents exactly are enforced at its bound:
// rate limits at limit.MaxWindowUnits/Window, counts and nanos at limit.MaxValue.
//
// zero lists the dimensions whose limit is 0 ("nothing allowed"; a monthlySpend below half a
// nano counts as 0). The store has no way to say that (its 0 is "unlimited"), so they are
// encoded as 1, the tightest limit it represents; the service denies on its own, without
// asking the store, a dimension that is 0 in every tier of the customer's ladder.
func ToLimit(l catalog.Limits) (lim limit.Limits, zero limit.DimSet) {
	whole := func(p *int64, max int64, dim limit.Dimension) int64 {
		switch {
		case p == nil:
			return 0
		case *p <= 0:
			zero |= 1 << dim
			return 1
		}
		return min(*p, max)
	}
	lim.Window = Window
	lim.WalletLimited = true // the store applies it only to a customer with a wallet
	lim.RequestsPerWindow = whole(l.RequestsPerMinute, maxRate, limit.DimRPM)
	lim.TokensPerWindow = whole(l.TokensPerMinute, maxRate, limit.DimTPM)
	lim.MonthlyTokens = whole(l.MonthlyTokens, limit.MaxValue, limit.DimMonthlyTokens)
	lim.MaxConcurrent = whole(l.MaxConcurrent, limit.MaxValue, limit.DimConcurrency)
	if l.MonthlySpend != nil {
		n, ok := money.ToNanos(*l.MonthlySpend)
		switch {
		case !ok || n > limit.MaxValue:
			lim.MonthlySpend = limit.MaxValue
		case n <= 0:
			zero |= 1 << limit.DimMonthlySpend
			lim.MonthlySpend = 1
		default:
			lim.MonthlySpend = n
		}
	}
	return lim, zero
}

// TierTable is a customer's limits on every rung of its ladder, resolved and converted once.
type TierTable struct {
	// Rows is what the counter store decides with: one row per tier key of the ladder, and the
	// row "" for a customer the store holds no tier for (or a tier the ladder lacks): the
	// ladder's base tier (tier.Current's reading of ""), or the plan itself without a ladder.
	Rows counter.TierLimits
	// Effective holds the same limits as the catalog states them (nil: unlimited; 0: nothing
	// allowed), for display.
	Effective map[string]catalog.Limits
	// Base is the tier key of row "" ("" without a ladder).
	Base string
	// Blocked is the dimension, of highest precedence, whose limit is 0 in every row: the
	// service denies on it without asking the store. limit.DimNone when there is none.
	Blocked limit.Dimension
}

// ResolveLimits builds a customer's TierTable: for each tier of the catalog's ladder,
// tier.EffectiveLimits of the plan's limits in that tier, then the customer's overrides, which
// replace a limit in every tier alike (an override is the customer's own deal and does not
// scale with promotions), converted with ToLimit.
func ResolveLimits(cat *catalog.Catalog, plan *catalog.Plan, overrides catalog.Limits) TierTable {
	t := TierTable{Rows: counter.TierLimits{}, Effective: map[string]catalog.Limits{}}
	allZero := ^limit.DimSet(0)
	row := func(key string, st *catalog.SpendTier) {
		eff := withOverrides(tier.EffectiveLimits(plan.Limits, st), overrides)
		lim, zero := ToLimit(eff)
		t.Rows[key], t.Effective[key] = lim, eff
		allZero &= zero
	}
	var ladder *catalog.Tiers
	if cat != nil {
		ladder = cat.Tiers
	}
	base := tier.Current(ladder, "", "")
	if base != nil {
		t.Base = base.Key
		for _, st := range ladder.Ladder {
			row(st.Key, st)
		}
	}
	row("", base)
	t.Blocked = limit.DimNone
	for _, d := range [...]limit.Dimension{limit.DimMonthlySpend, limit.DimMonthlyTokens, limit.DimTPM, limit.DimRPM, limit.DimConcurrency} {
		if allZero.Has(d) {
			t.Blocked = d
			break
		}
	}
	return t
}

// TokenMeters returns the keys of the catalog's meters whose period usage counts as tokens for
// the monthly token cap: the plain (not derived) sum meters fed by one of TokenMetricKeys, in
// catalog order. Derived meters (credits) and count meters are not tokens.
func TokenMeters(cat *catalog.Catalog) []string {
	var out []string
	for _, m := range cat.Meters {
		if m.Expr != nil || m.Aggregation != catalog.Sum {
			continue
		}
		for _, k := range TokenMetricKeys {
			if m.MetricKey == k {
				out = append(out, m.Key)
				break
			}
		}
	}
	return out
}

// planInfo is what the service derives once per compiled plan: the token meters and the
// estimators by model.
type planInfo struct {
	cat         *catalog.Catalog
	plan        *catalog.Plan
	tokenMeters []string
	eventType   string
	estimators  atomic.Pointer[map[string]*estimator] // copy on write: reads take no lock
	mu          sync.Mutex                            // serialises writers
}

// maxModels bounds the estimators cached per plan: a model string comes from the client, so
// past the bound a new model's estimator is built per call instead of cached.
const maxModels = 1024

func (p *planInfo) estimator(model string) *estimator {
	if m := p.estimators.Load(); m != nil {
		if e := (*m)[model]; e != nil {
			return e
		}
	}
	e := newEstimator(p.cat, p.plan, model, p.eventType)
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.estimators.Load()
	if old != nil {
		if got := (*old)[model]; got != nil {
			return got
		}
		if len(*old) >= maxModels {
			return e
		}
	}
	next := make(map[string]*estimator, 1+mapLen(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[model] = e
	p.estimators.Store(&next)
	return e
}

func mapLen(m *map[string]*estimator) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// customerLimits is the cached TierTable of one customer, valid while the customer stays on the
// same compiled plan with the same overrides.
type customerLimits struct {
	plan      *catalog.Plan
	cat       *catalog.Catalog
	versionID int64
	overrides string
	info      *planInfo
	table     TierTable
}

func (c *customerLimits) matches(cp *billing.CustomerPlan) bool {
	return c.plan == cp.Plan && c.cat == cp.Catalog && c.versionID == cp.PlanVersionID && c.overrides == string(cp.Overrides)
}

const shardCount = 64

type limitsShard struct {
	mu sync.RWMutex
	m  map[string]*customerLimits
	_  [32]byte
}

// planKey names a compiled plan.
type planKey struct {
	cat  *catalog.Catalog
	plan *catalog.Plan
}

// maxPlans bounds the plan cache; catalogs replaced long ago fall out when it is reset.
const maxPlans = 256

func (s *Service) planInfo(cat *catalog.Catalog, plan *catalog.Plan) *planInfo {
	k := planKey{cat, plan}
	s.plansMu.RLock()
	p := s.planInfos[k]
	s.plansMu.RUnlock()
	if p != nil {
		return p
	}
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	if p = s.planInfos[k]; p != nil {
		return p
	}
	if len(s.planInfos) >= maxPlans {
		s.planInfos = map[planKey]*planInfo{}
	}
	p = &planInfo{cat: cat, plan: plan, tokenMeters: TokenMeters(cat), eventType: s.eventType}
	s.planInfos[k] = p
	return p
}

// limitsFor returns the customer's cached limits, resolving them on first use and whenever the
// plan version, the catalog or the overrides changed.
func (s *Service) limitsFor(cp *billing.CustomerPlan) (*customerLimits, error) {
	sh := &s.limits[s.hash(cp.CustomerID)&(shardCount-1)]
	sh.mu.RLock()
	c := sh.m[cp.CustomerID]
	sh.mu.RUnlock()
	if c != nil && c.matches(cp) {
		return c, nil
	}
	if cp.Plan == nil || cp.Catalog == nil {
		return nil, problem.New(problem.Internal, "customer %q: no plan", cp.CustomerID)
	}
	o, err := ParseOverrides(cp.Overrides)
	if err != nil {
		return nil, err
	}
	c = &customerLimits{
		plan: cp.Plan, cat: cp.Catalog, versionID: cp.PlanVersionID, overrides: string(cp.Overrides),
		info:  s.planInfo(cp.Catalog, cp.Plan),
		table: ResolveLimits(cp.Catalog, cp.Plan, o),
	}
	sh.mu.Lock()
	sh.m[cp.CustomerID] = c
	sh.mu.Unlock()
	return c, nil
}
