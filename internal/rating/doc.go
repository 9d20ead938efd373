// Package rating turns usage into money, exactly. It is pure: no I/O, no clocks.
//
// Each pricing model is a cumulative function: the whole-period amount of a quantity. Rating one
// more event is the difference of that function after and before the event (the incremental
// amount), so for every model the amounts of a period's events add up exactly to the period's
// price, and attribution to API calls is exact by construction.
//
// Behaviour at the edges (the catalog's contract):
//   - flat: the amount once per period, whatever the usage.
//   - perUnit: quantity / per × unitPrice.
//   - graduated: each tier prices the units inside it; upTo is inclusive; any fraction past a
//     boundary enters the next tier; a tier's flatFee is charged once the quantity reaches into the
//     tier, and quantity 0 sits in the first tier, so a first-tier flatFee is charged at zero usage.
//   - volume: the whole quantity at the unit price of the tier that contains it, plus that tier's
//     flatFee. Crossing a boundary can lower the total, so an incremental amount can be negative.
//   - package: ceil((quantity − freeUnits) / packageSize) × packagePrice, never below 0.
//   - includedQuota: the first `included` units free, the rest at unitPrice / per.
//   - percentage of a property: each event pays value × rate/100 + fixedFee, clamped to
//     [minPerTransaction, maxPerTransaction]; the period amount is the sum.
//   - percentage of charges: rate/100 × the named charges' amounts after their maximum and before
//     their minimum true-up, computed incrementally from their incremental amounts. (A minimum is
//     a period-level adjustment no call caused, so a percentage of it could not be attributed.)
//   - a charge's maximum caps its period amount: once reached, further events add 0 and the cap
//     shows as a "maximum" adjustment line whose attribution holds what each event would have added.
//   - a charge's minimum and the plan's minimumCommitment are period-level true-ups computed when
//     the period is priced; they carry no attribution.
//   - Within a period, the first event that reaches a charge (or a price-table group) is charged
//     the function's value at its quantity, so a first-tier flatFee is attributed to it. A charge
//     no event reached is priced at quantity 0 with no attribution.
//
// Nothing here rounds: amounts are exact decimals. Rounding happens once, on invoice lines
// (money.Round).
package rating
