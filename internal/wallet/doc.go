// Package wallet is the prepaid-credit domain: credit grants, the order in which usage burns them,
// refunds when a period's running total falls, what usage the grants could not cover, and the
// low-balance signal. It is pure: no I/O, no clock, no randomness. The billing service keeps the
// grants and burns in its store and calls a Wallet from its single writer, in ledger order; the
// same grants and the same calls always give the same results.
//
// Amounts are exact decimals (internal/money) and are never rounded here: the invoice rounds.
//
// Grants and eligibility:
//   - A grant has a positive Amount, a Priority, an optional ExpiresAt, a CreatedAt and a Kind
//     (paid or promotional). Its remaining balance is Amount minus what it has burned, net of
//     refunds; it never goes below zero nor above Amount.
//   - A grant may burn for an event at time t iff t < ExpiresAt (an event timestamped exactly at
//     expiry does not burn it) and its remaining balance is positive. CreatedAt plays no part in
//     eligibility: the caller passes only grants that exist, and a grant exists once created.
//   - Eligibility is judged at each call's own timestamp, not at the time of the latest call: an
//     event timestamped before a grant's expiry still burns it when it arrives after later events.
//   - Burn order is a total order: Priority ascending, then earliest ExpiresAt (no expiry last),
//     then oldest CreatedAt, then ID. It does not depend on the order grants were added.
//
// Apply, one rated usage amount of one billing period:
//   - The wallet keeps, per period key, the running spend (the sum of every amount applied), the
//     amount burned from each grant in that period, and the uncovered amount: usage no grant
//     could pay, billed on the invoice as amount due. At all times
//     burned in the period + uncovered == max(0, spend), so burns never exceed the spend, and
//     they add up to it whenever the spend is not negative.
//   - A positive amount burns the eligible grants in burn order, exhausting as many as it needs
//     and never taking one below zero; what they cannot cover is added to the uncovered amount.
//   - A negative amount (volume pricing lowering the running total) first reduces the period's
//     uncovered amount, then refunds the grants this period burned, most recently burned first
//     (the exact reverse of the order the burns happened in), never more than a grant burned in
//     that period. A refund never touches another period's burns.
//   - A refund due to a grant that has expired at the call's time (at >= ExpiresAt) is
//     forfeited: it returns to that grant, so the grant's ledger still balances, but the grant is
//     expired and the amount is counted under Balance.Expired, never in the usable balance. The
//     Burn entry is marked Forfeited.
//   - If the spend goes below zero, nothing is left to refund beyond max(0, spend) = 0; later
//     positive amounts first bring the spend back to zero and only burn or go uncovered above it.
//   - A zero amount does nothing (no period is opened).
//   - A grant added later never pays usage that was already uncovered: that usage stays amount due
//     on the invoice. The new grant pays usage applied after it was added. A later negative amount
//     still reduces the uncovered amount before refunding any grant.
//
// Balances:
//   - Balance(at) sums the remaining balances of the grants not expired at `at`; the remaining
//     balances of expired grants are reported apart, as Expired (forfeited credit).
//   - Net balance = Balance(at) − the open period's uncovered amount (NetBalance). It is negative
//     when usage was already in flight as the grants ran out: the authorize path admits a request
//     on its estimate, and the settled usage turns out larger than the remaining balance, or
//     several concurrent requests are each admitted against the same remaining balance and
//     together exceed it. The wallet never refuses settled usage: the excess is the period's
//     uncovered amount, shown as a negative net balance and billed on the invoice as amount due.
//
// Low balance:
//   - With a threshold set, Apply reports LowBalanceCrossed exactly when the balance at the call's
//     time goes from ≥ threshold before it to < threshold after it. It therefore fires once per
//     crossing and re-arms by itself once the balance is back at or above the threshold (a grant
//     added, a refund, Restore). It keeps no state: a rebuilt Wallet reports the same crossings.
//   - Expiry is not a call: a grant expiring does not fire the signal, and when expiry alone takes
//     the balance below the threshold no later Apply fires either (its balance before was already
//     below) until the balance is back at or above the threshold. BelowThreshold(at) tells the
//     caller the current state; warning about credit about to expire is scheduled from ExpiresAt.
//
// Rebuilding: New(grants) with every stored grant, Restore(grantID, burned) with each grant's net
// burned total over all periods, and RestorePeriod with each period that may still receive
// amounts (its spend, its uncovered amount and its burns in ledger order, or the compacted burns
// Period returns) rebuild a Wallet that answers every later call exactly as the original.
//
// A Wallet is not safe for concurrent use; its single writer owns it.
package wallet
