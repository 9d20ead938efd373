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

-- seq is assigned by InsertEvents (AUTOINCREMENT: never reused). An event is one row: its rated
-- lines are in lines, in the codec's length-prefixed Lines encoding (exact decimal strings), so
-- an ingest batch writes one row and four index entries per event. Attribution reads the
-- period's events through events_period and sums their lines in Go.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key        TEXT    NOT NULL UNIQUE,
    content_hash    BLOB,
    id              TEXT,             -- NULL for events without an id
    event_type      TEXT    NOT NULL,
    customer_id     TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL, -- '' when none
    ts              INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    properties      TEXT,             -- JSON object
    measurements    TEXT,             -- JSON array
    unmetered       TEXT,             -- JSON array
    plan_version_id INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    amount          TEXT    NOT NULL,
    cost            TEXT    NOT NULL,
    lines           TEXT              -- rated lines (codec.Lines), NULL when none
) STRICT;

-- No index on id: GetEvent looks events up by idem_key = 'id:' || id. Events without a
-- correlation ID are left out of events_correlation.
CREATE INDEX events_period      ON events (customer_id, plan_version_id, period_start, seq);
CREATE INDEX events_customer_ts ON events (customer_id, ts, seq);
CREATE INDEX events_correlation ON events (correlation_id, ts, seq) WHERE correlation_id <> '';
