-- Levy's durable store, SQLite flavour. Keep parallel to postgres/migrations/0001_init.sql:
-- the same tables, columns and indexes. Timestamps are INTEGER Unix nanoseconds (the zero time is
-- -9223372036854775808); amounts and quantities are TEXT exact decimal strings, summed in Go,
-- never with SQL SUM (which would go through floating point); JSON is TEXT.

CREATE TABLE api_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    scopes     TEXT    NOT NULL, -- JSON array
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE TABLE catalog_versions (
    version    INTEGER NOT NULL PRIMARY KEY,
    document   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE plan_versions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_key        TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    catalog_version INTEGER NOT NULL REFERENCES catalog_versions (version),
    content_hash    TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (plan_key, version)
) STRICT;

CREATE TABLE customers (
    id         TEXT    NOT NULL PRIMARY KEY,
    metadata   TEXT    NOT NULL, -- JSON object
    limits     TEXT,             -- JSON, NULL when none
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     TEXT    NOT NULL REFERENCES customers (id),
    plan_version_id INTEGER NOT NULL REFERENCES plan_versions (id),
    starts_at       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX subscriptions_customer ON subscriptions (customer_id, starts_at, id);

-- seq is assigned by InsertEvents (AUTOINCREMENT: never reused).
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key        TEXT    NOT NULL UNIQUE,
    content_hash    BLOB,
    id              TEXT,             -- NULL for events without an id
    event_type      TEXT    NOT NULL,
    customer_id     TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL, -- '' when none
    attr_key        TEXT    NOT NULL, -- correlation_id, or 'event:' || id
    ts              INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    properties      TEXT,             -- JSON object
    measurements    TEXT,             -- JSON array
    unmetered       TEXT,             -- JSON array
    plan_version_id INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    amount          TEXT    NOT NULL,
    cost            TEXT    NOT NULL
) STRICT;

CREATE INDEX events_period      ON events (customer_id, plan_version_id, period_start, seq);
CREATE INDEX events_customer_ts ON events (customer_id, ts, seq);
CREATE INDEX events_correlation ON events (correlation_id, ts, seq);
CREATE INDEX events_id          ON events (id) WHERE id IS NOT NULL;

-- One row per (event, charge); the event's period key and attribution key are copied here so
-- attribution is one index range scan. No foreign key to events: lines are written only by
-- InsertEvents, in the transaction that writes their event, and a per-row referential check
-- would cost more than the rest of the line's insert.
CREATE TABLE rated_lines (
    event_seq       INTEGER NOT NULL,
    idx             INTEGER NOT NULL,
    customer_id     TEXT    NOT NULL,
    plan_version_id INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    charge          TEXT    NOT NULL,
    grp             TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    attr_key        TEXT    NOT NULL,
    quantity        TEXT    NOT NULL,
    amount          TEXT    NOT NULL,
    cost            TEXT    NOT NULL,
    PRIMARY KEY (event_seq, idx)
) STRICT, WITHOUT ROWID;

CREATE INDEX rated_lines_attribution
    ON rated_lines (customer_id, plan_version_id, period_start, charge, grp, type, attr_key);
