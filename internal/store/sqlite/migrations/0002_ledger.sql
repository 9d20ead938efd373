-- Issue 4: late events billed into another period, the counter cursors, spend-tier transitions,
-- wallet grants and burns, notices and final invoices. Keep parallel to
-- postgres/migrations/0002_ledger.sql. Same conventions as 0001: timestamps are INTEGER Unix
-- nanoseconds, amounts exact decimal TEXT summed in Go, JSON TEXT.

-- A late event is rated in its own, closed, period and billed into another one. Both columns are
-- NULL when the event is billed where it is rated (every event before this migration).
ALTER TABLE events ADD COLUMN billed_plan_version_id INTEGER;
ALTER TABLE events ADD COLUMN billed_period_start    INTEGER;

-- ScanEvents of one customer walks events_customer_seq. Late events only are in events_billed,
-- which Adjustments and the attribution of an adjustment line read: events billed where they
-- are rated cost it nothing.
CREATE INDEX events_customer_seq ON events (customer_id, seq);
CREATE INDEX events_billed ON events (customer_id, billed_plan_version_id, billed_period_start, seq)
    WHERE billed_plan_version_id IS NOT NULL;

ALTER TABLE customers ADD COLUMN tier_override TEXT NOT NULL DEFAULT ''; -- '' when none
ALTER TABLE customers ADD COLUMN low_balance   TEXT;                     -- exact decimal, NULL when none

-- Named durable cursors (e.g. how far the counter store has applied the ledger).
CREATE TABLE cursors (
    name  TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

-- Spend-tier transitions. event_seq is 0 (and the event columns '') for a transition no event
-- carries (an override). tier_transitions_once is a safety net: a promotion or period reset
-- happens once per (customer, basis period, from, to).
CREATE TABLE tier_transitions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id        TEXT    NOT NULL,
    at                 INTEGER NOT NULL,
    from_tier          TEXT    NOT NULL,
    to_tier            TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    basis              TEXT    NOT NULL,
    basis_period_start INTEGER NOT NULL,
    spend              TEXT    NOT NULL,
    event_seq          INTEGER NOT NULL,
    event_key          TEXT    NOT NULL,
    event_id           TEXT    NOT NULL,
    correlation_id     TEXT    NOT NULL
) STRICT;

CREATE INDEX tier_transitions_customer ON tier_transitions (customer_id, id);
CREATE UNIQUE INDEX tier_transitions_once
    ON tier_transitions (customer_id, basis_period_start, from_tier, to_tier, reason)
    WHERE reason IN ('promotion', 'period_reset');

CREATE TABLE wallet_grants (
    id          TEXT    NOT NULL PRIMARY KEY,
    customer_id TEXT    NOT NULL,
    amount      TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    expires_at  INTEGER,          -- NULL: never expires
    kind        TEXT    NOT NULL,
    note        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX wallet_grants_customer ON wallet_grants (customer_id, created_at, id);

-- One row per change of a grant's balance by one event, ord its place among the event's burns;
-- grant_id '' records the change of the period's uncovered amount. The key leads with the
-- customer: ListBurns reads one customer's burns in event order, and ScanEvents finds an
-- event's burns by (its customer, its seq).
CREATE TABLE wallet_burns (
    customer_id     TEXT    NOT NULL,
    event_seq       INTEGER NOT NULL,
    ord             INTEGER NOT NULL,
    grant_id        TEXT    NOT NULL,
    event_key       TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    plan_version_id INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    amount          TEXT    NOT NULL,
    PRIMARY KEY (customer_id, event_seq, ord)
) STRICT, WITHOUT ROWID;

CREATE TABLE notices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    event_seq   INTEGER NOT NULL,
    event_key   TEXT    NOT NULL,
    data        TEXT              -- JSON object, NULL when none
) STRICT;

CREATE INDEX notices_customer ON notices (customer_id, id);

-- Final invoices, numbered 1, 2, 3... across the store with no gaps; id is 'inv_' and the
-- number in at least 8 digits.
CREATE TABLE invoices (
    number          INTEGER NOT NULL PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    customer_id     TEXT    NOT NULL,
    plan_version_id INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    issued_at       INTEGER NOT NULL,
    currency        TEXT    NOT NULL,
    total           TEXT    NOT NULL,
    amount_due      TEXT    NOT NULL,
    document        TEXT,             -- JSON, NULL when none
    UNIQUE (customer_id, plan_version_id, period_start)
) STRICT;

CREATE INDEX invoices_customer ON invoices (customer_id, period_start, number);
