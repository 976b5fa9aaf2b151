-- intake's tables in SQLite; {p} is the table prefix (default "intake_").
-- Times are unix nanoseconds.

-- One row per idempotency key, the key's bytes as a BLOB (any length, any
-- bytes). state 1 = pending (claimed until expires_at by holder), 2 = done
-- (remembered until expires_at). A pending row with seq set is a queued
-- event, kept in event as event.MarshalBinary encodes it, byte-exact; seq
-- orders the queue.
CREATE TABLE IF NOT EXISTS {p}keys (
    key         BLOB    PRIMARY KEY,
    state       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    holder      TEXT,
    seq         INTEGER,
    event       BLOB
);

-- Expired keys are found through this index, in bounded batches.
CREATE INDEX IF NOT EXISTS {p}keys_expires_at ON {p}keys (expires_at);

-- Queued events in order, for adoption.
CREATE INDEX IF NOT EXISTS {p}keys_queued ON {p}keys (seq) WHERE state = 1 AND seq IS NOT NULL;

CREATE TABLE IF NOT EXISTS {p}checkpoints (
    name       TEXT    PRIMARY KEY,
    cursor     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS {p}leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
