-- intake's tables; {p} is the table prefix (default "intake_").

-- One row per idempotency key, found by the SHA-256 of the key, so that a
-- key of any length and any bytes fits the index. state 1 = pending
-- (claimed until expires_at by holder), 2 = done (remembered until
-- expires_at). A pending row with seq set is a queued event: key holds the
-- key's bytes and event the event as event.MarshalBinary encodes it,
-- byte-exact; both are cleared when the key is committed.
CREATE TABLE IF NOT EXISTS {p}keys (
    hash        bytea       PRIMARY KEY,
    state       smallint    NOT NULL,
    expires_at  timestamptz NOT NULL,
    holder      text,
    seq         bigint,
    key         bytea,
    event       bytea
);

-- Expired keys are found through this index, in bounded batches.
CREATE INDEX IF NOT EXISTS {p}keys_expires_at ON {p}keys (expires_at);

-- Queued events in order, for adoption.
CREATE INDEX IF NOT EXISTS {p}keys_queued ON {p}keys (seq) WHERE state = 1 AND seq IS NOT NULL;

CREATE SEQUENCE IF NOT EXISTS {p}keys_seq;

CREATE TABLE IF NOT EXISTS {p}checkpoints (
    name       text        PRIMARY KEY,
    cursor     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {p}leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
