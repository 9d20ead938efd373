-- Issue 4: late events billed into another period, the counter cursors, spend-tier transitions,
-- wallet grants and burns, notices and final invoices. Keep parallel to
-- sqlite/migrations/0002_ledger.sql. Same conventions as 0001: timestamps are BIGINT Unix
-- nanoseconds, amounts unconstrained NUMERIC, JSON TEXT, keys and identifiers in the "C"
-- collation.

-- A late event is rated in its own, closed, period and billed into another one. Both columns are
-- NULL when the event is billed where it is rated (every event before this migration).
ALTER TABLE events ADD COLUMN billed_plan_version_id BIGINT;
ALTER TABLE events ADD COLUMN billed_period_start    BIGINT;

-- ScanEvents of one customer walks events_customer_seq. Late events only are in events_billed,
-- which Adjustments and the attribution of an adjustment line read: events billed where they
-- are rated cost it nothing.
CREATE INDEX events_customer_seq ON events (customer_id, seq);
CREATE INDEX events_billed ON events (customer_id, billed_plan_version_id, billed_period_start, seq)
    WHERE billed_plan_version_id IS NOT NULL;

ALTER TABLE customers ADD COLUMN tier_override TEXT NOT NULL DEFAULT ''; -- '' when none
ALTER TABLE customers ADD COLUMN low_balance   NUMERIC;                  -- NULL when none

-- Named durable cursors (e.g. how far the counter store has applied the ledger).
CREATE TABLE cursors (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Spend-tier transitions. event_seq is 0 (and the event columns '') for a transition no event
-- carries (an override). IDs come from tier_transitions_seq; InsertEvents takes them before it
-- writes. tier_transitions_once is a safety net: a promotion or period reset happens once per
-- (customer, basis period, from, to).
CREATE SEQUENCE tier_transitions_seq;

CREATE TABLE tier_transitions (
    id                 BIGINT NOT NULL PRIMARY KEY DEFAULT nextval('tier_transitions_seq'),
    customer_id        TEXT COLLATE "C" NOT NULL,
    at                 BIGINT NOT NULL,
    from_tier          TEXT COLLATE "C" NOT NULL,
    to_tier            TEXT COLLATE "C" NOT NULL,
    reason             TEXT   NOT NULL,
    basis              TEXT   NOT NULL,
    basis_period_start BIGINT NOT NULL,
    spend              NUMERIC NOT NULL,
    event_seq          BIGINT NOT NULL,
    event_key          TEXT COLLATE "C" NOT NULL,
    event_id           TEXT COLLATE "C" NOT NULL,
    correlation_id     TEXT COLLATE "C" NOT NULL
);

ALTER SEQUENCE tier_transitions_seq OWNED BY tier_transitions.id;

CREATE INDEX tier_transitions_customer ON tier_transitions (customer_id, id);
CREATE UNIQUE INDEX tier_transitions_once
    ON tier_transitions (customer_id, basis_period_start, from_tier, to_tier, reason)
    WHERE reason IN ('promotion', 'period_reset');

CREATE TABLE wallet_grants (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL,
    amount      NUMERIC NOT NULL,
    priority    BIGINT NOT NULL,
    expires_at  BIGINT,          -- NULL: never expires
    kind        TEXT   NOT NULL,
    note        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX wallet_grants_customer ON wallet_grants (customer_id, created_at, id);

-- One row per change of a grant's balance by one event, ord its place among the event's burns;
-- grant_id '' records the change of the period's uncovered amount. The key leads with the
-- customer: ListBurns reads one customer's burns in event order, and ScanEvents finds an
-- event's burns by (its customer, its seq).
CREATE TABLE wallet_burns (
    customer_id     TEXT COLLATE "C" NOT NULL,
    event_seq       BIGINT NOT NULL,
    ord             BIGINT NOT NULL,
    grant_id        TEXT COLLATE "C" NOT NULL,
    event_key       TEXT COLLATE "C" NOT NULL,
    at              BIGINT NOT NULL,
    plan_version_id BIGINT NOT NULL,
    period_start    BIGINT NOT NULL,
    amount          NUMERIC NOT NULL,
    PRIMARY KEY (customer_id, event_seq, ord)
);

-- IDs come from notices_seq; InsertEvents takes them before it writes.
CREATE SEQUENCE notices_seq;

CREATE TABLE notices (
    id          BIGINT NOT NULL PRIMARY KEY DEFAULT nextval('notices_seq'),
    customer_id TEXT COLLATE "C" NOT NULL,
    kind        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    event_seq   BIGINT NOT NULL,
    event_key   TEXT COLLATE "C" NOT NULL,
    data        TEXT             -- JSON object, NULL when none
);

ALTER SEQUENCE notices_seq OWNED BY notices.id;

CREATE INDEX notices_customer ON notices (customer_id, id);

-- Final invoices, numbered 1, 2, 3... across the store with no gaps (CreateInvoice takes the
-- next number under an advisory lock); id is 'inv_' and the number in at least 8 digits.
CREATE TABLE invoices (
    number          BIGINT NOT NULL PRIMARY KEY,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    customer_id     TEXT COLLATE "C" NOT NULL,
    plan_version_id BIGINT NOT NULL,
    period_start    BIGINT NOT NULL,
    period_end      BIGINT NOT NULL,
    issued_at       BIGINT NOT NULL,
    currency        TEXT   NOT NULL,
    total           NUMERIC NOT NULL,
    amount_due      NUMERIC NOT NULL,
    document        TEXT,            -- JSON, NULL when none
    UNIQUE (customer_id, plan_version_id, period_start)
);

CREATE INDEX invoices_customer ON invoices (customer_id, period_start, number);
