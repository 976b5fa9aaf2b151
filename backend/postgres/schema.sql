-- intake's tables; {p} is the table prefix (default "intake_").

-- One row per idempotency key. state 1 = pending (claimed until expires_at
-- by holder), 2 = done (remembered until expires_at). A pending row with a
-- payload is a queued event; seq orders the queue.
CREATE TABLE IF NOT EXISTS {p}keys (
    key         text        PRIMARY KEY,
    state       smallint    NOT NULL,
    expires_at  timestamptz NOT NULL,
    holder      text,
    seq         bigint,
    source      text,
    id          text,
    type        text,
    via         smallint,
    happened_at timestamptz,
    received_at timestamptz,
    payload     bytea,
    meta        jsonb
);

-- Expired keys are found through this index, in bounded batches.
CREATE INDEX IF NOT EXISTS {p}keys_expires_at ON {p}keys (expires_at);

-- Queued events in order, for adoption.
CREATE INDEX IF NOT EXISTS {p}keys_queue ON {p}keys (seq) WHERE state = 1 AND payload IS NOT NULL;

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
