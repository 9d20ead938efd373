// Package authorize is Levy's pre-flight authorize service: the Go API the HTTP layer
// (POST /v1/authorize, GET /v1/customers/{id}/limits, reservation release, breaker reset) and
// the LLM gateway call in-process. It resolves a customer's limits and a request's estimated
// cost, asks the counter store for one atomic decision (package limit holds its arithmetic),
// fails open when the store cannot answer, and formats the answer's headers. It also holds the
// margin guard's rule evaluation, which billing calls after rating each event.
//
// # One decision
//
// Authorize validates the request (an Invalid problem naming every bad field; nothing is
// asked), reads the customer's plan from the PlanSource (in memory after the first call),
// takes the customer's limit table and the model's estimator from caches, and makes exactly
// one counter-store call, bounded by Options.Timeout (5 ms by default). An ALLOW holds the
// estimate under a new reservation ID ("rsv_" and 16 random bytes from crypto/rand in hex)
// until the usage event with the same correlation ID settles it, a Release frees it or
// Options.ReservationTTL (10 minutes) expires it. A DENY changes nothing. Without Options.Now
// the decision takes the counter store's clock (Redis: the server's, shared by every node);
// with it, the injected clock.
//
// # Limits
//
//   - The store receives one row of limits per tier of the catalog's spend ladder:
//     tier.EffectiveLimits of the plan's limits in that tier (the tier's absolute limit, else
//     the plan's × limitMultiplier rounded down, else the plan's), then the customer's
//     overrides. Row "" is the tier of a customer the store holds no tier for: the ladder's
//     base tier (as tier.Current reads ""), or the plan itself without a ladder.
//   - Overrides (ParseOverrides: requestsPerMinute, tokensPerMinute, monthlyTokens,
//     monthlySpend as a decimal, maxConcurrent) replace the limit in every tier alike: they are
//     the customer's own deal and do not scale with promotions. null leaves a limit as the
//     tier has it; an unknown key or a bad value is an Invalid problem naming
//     "limits.<name>", returned by every call for the customer until the overrides are fixed.
//   - Rate limits are per minute (Window = 60,000 ms, a burst of the full limit); the monthly
//     caps count the open billing period, whatever its length, and reset at its end. Money is
//     in nanos (money.ToNanos). Limits beyond what the store represents exactly are enforced at
//     its bound (rate limits at about 18.7 billion a minute, counts and nanos at 2^53−1).
//   - An absent limit is unlimited. A limit of 0 allows nothing: when it is 0 in every row
//     the service denies with that dimension's reason and Never set, without asking the
//     store; when it is 0 in some rows only it is sent as 1, the tightest limit the store can
//     express (the store reads 0 as unlimited).
//   - Every row is wallet-limited; the store applies it only to a customer with at least one
//     wallet grant, so the prepaid balance (minus open reservations) must cover the estimate
//     exactly for the customers who have a wallet.
//   - The table is cached per customer, keyed by (compiled catalog, plan, plan version ID,
//     overrides text), so a catalog change, a move to another plan or new overrides take
//     effect on the next call and the hot path allocates nothing.
//
// # The estimate (a conservative bound)
//
// A request holds EstimatedInputTokens + MaxOutputTokens tokens and a money estimate that is
// never below what rating the call's usage event can charge, whatever the period's state: the
// event is taken to be of type Options.EventType ("llm.completion"), with the one property
// model = Request.Model and the measurements input_tokens = EstimatedInputTokens and
// output_tokens = MaxOutputTokens. Routing is the rating engine's: the meters those
// measurements feed (meters bound to another event type are not fed; count meters count 1),
// the count meters every such event feeds, and derived meters whose formula reads either
// measurement (evaluated with the other measurements at 0); then every usage charge of the
// plan on those meters whose filter matches (properties other than model read as absent), at
// the price-table entry of the model, else the table's defaultPrice, else not at all. Per
// charge, for a quantity q:
//
//   - perUnit and includedQuota: q × unitPrice/per (the included units are ignored);
//   - graduated: q × the highest tier's unit price, plus the flat fees one event can newly
//     reach: the largest sum of fees over a run of tiers whose lower bounds lie within q of
//     the run's first (the first tier's fee always counts: the period's first event pays it);
//   - volume: q × the highest unit price, plus the highest flat fee, plus the largest
//     repricing of earlier units a crossing into a dearer tier causes (upTo_i × (r_j − r_i));
//     0 when later tiers are cheaper, as usual;
//   - package: ⌈q / packageSize⌉ × packagePrice (the free units are ignored);
//   - percentage of charges: rate% of the charges it names, through every chain of them; no
//     fixed fee, as the rating engine charges none on a percentage of charges;
//   - percentage of a property, flat charges, minimums and the plan's commitment: 0 (the event
//     carries no such property; the others are period-level true-ups no call causes).
//
// Charge maximums and tier discounts, which only lower an amount, are ignored. The exact sum is
// rounded up to a whole nano (money.ToNanos, plus one nano when that fell short) and capped at
// 2^53−1 nanos. The bound holds for an event with exactly these measurements; a call whose
// usage turns out dearer (cache writes priced above input) is counted at its actual usage when
// it settles. Estimators are cached per (compiled plan, model), at most 1,024 models per plan
// (past that a model's estimator is built per call). Without derived meters an estimate is
// integer arithmetic and allocates nothing; a priced derived meter (credits) evaluates its
// formula per call, exactly, in decimals.
//
// Token meters (counter.AuthorizeParams.TokenMeters, what the monthly token cap counts) are the
// catalog's plain sum meters fed by input_tokens, output_tokens, cache_read_tokens,
// cache_write_5m_tokens or cache_write_1h_tokens: what the gateway records for a call.
//
// # Failing open (bounded)
//
// When the counter store returns counter.ErrUnavailable, misses the deadline, refuses the
// connection or times out on the network, the decision is taken without it: ALLOW with
// FailOpen set and no reservation (usage is billed afterwards from the ledger), unless this
// node's safe capacity for the customer is spent: a GCRA bucket of
// Options.SafeRequestsPerMinute (60) per minute with a burst of the full limit, kept in
// memory per node and consulted only while failing open. Then the answer is DENY with reason
// fail_open_capacity and the bucket's exact wait. The caller's own cancellation is returned as
// an error, never failed open. Both outcomes are counted in levy_authorize_fail_open_total.
//
// # Results and headers
//
// RetryAfterSeconds is the decision's wait in milliseconds rounded up to whole seconds, and at
// least 1 on every DENY (a wait of 0 means "when a reservation ends"). Remaining holds the
// figures of every limited dimension. Headers writes X-RateLimit-Limit/-Remaining/-Reset for
// Headline(), the IETF RateLimit-Policy / RateLimit pair, Retry-After and Levy-Fail-Open;
// OpenAIHeaders and AnthropicHeaders write the provider-style sets the gateway's routes need.
// Each documents its exact format; monthly_spend figures are in minor units of the currency.
//
// # Breakers and the margin guard
//
// A breaker ID is "<customerId>" for the customer's breaker and "<customerId>/task/<taskId>"
// for one task's; customer IDs hold no "/", so the first "/task/" separates them.
// Package guard evaluates the rules: the billing writer calls guard.Evaluate on every rated
// event (catalog.GuardRule.Breached, exact), records each trip with its event (a breaker_trip
// notice) and opens the breaker in the counter store for the trip's cool-down; an event with
// zero cost and zero price trips nothing.
package authorize
