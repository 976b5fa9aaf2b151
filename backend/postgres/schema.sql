-- intake's tables; {p} is the table prefix (default "intake_").

-- One row per idempotency key, found by the SHA-256 of the key, so that a
-- key of any length and any bytes fits the index. state 1 = pending
-- (claimed until expires_at by holder; holder NULL: given back), 2 = done
-- (remembered until expires_at), 3 = dead (kept until expires_at). A
-- pending or dead row with seq set holds an event: key holds the key's
-- bytes, event the event as event.MarshalBinary encodes it, byte-exact,
-- source and type its own for filtering, attempts the deliveries counted
-- across processes, failure (JSON) why it died; all are cleared when the
-- key is committed.
CREATE TABLE IF NOT EXISTS {p}keys (
    hash        bytea       PRIMARY KEY,
    state       smallint    NOT NULL,
    expires_at  timestamptz NOT NULL,
    holder      text,
    seq         bigint,
    key         bytea,
    event       bytea,
    source      bytea,
    type        bytea,
    attempts    integer     NOT NULL DEFAULT 0,
    failure     bytea
);

-- The subscriptions that acked a queued event inside a transaction of
-- their own (Backend.AckTx): adoption does not deliver it to them again.
-- Cleared with the event when the key is committed.
ALTER TABLE {p}keys ADD COLUMN IF NOT EXISTS done bytea[];

-- The adoption that took a queued event (a random number per Adopt
-- call): when an adoption's reply is lost after its commit, the holder
-- gives back what that call took, which it never got.
ALTER TABLE {p}keys ADD COLUMN IF NOT EXISTS adopted bigint;

-- Whether the holder began delivering the queued event (Backend.Start):
-- a crash of its holder counts an attempt against it only then, so a
-- crash loop does not bury a backlog never delivered.
ALTER TABLE {p}keys ADD COLUMN IF NOT EXISTS started boolean NOT NULL DEFAULT false;

-- Expired keys that can be deleted (no queued event) are found through
-- this index, in bounded batches: queued events whose claim expired (a
-- live holder's renewal writes nothing) are not in it, so that cleanup
-- never reads a large backlog. It replaces an index on expires_at alone.
DROP INDEX IF EXISTS {p}keys_expires_at;
CREATE INDEX IF NOT EXISTS {p}keys_expirable ON {p}keys (expires_at) WHERE seq IS NULL OR state = 3;

-- Queued events are indexed by holder (below), not by seq alone: an
-- index in seq order drew adoption into reading a live holder's whole
-- backlog to find the few rows of a dead one.
DROP INDEX IF EXISTS {p}keys_queued;

-- Queued events by holder, in order: adoption finds the holders (a skip
-- scan over this index), and reads only those of holders that are gone
-- and those given back (holder NULL).
CREATE INDEX IF NOT EXISTS {p}keys_held ON {p}keys (holder, seq) WHERE state = 1 AND seq IS NOT NULL;

-- Dead events in order, for inspection.
CREATE INDEX IF NOT EXISTS {p}keys_dead ON {p}keys (seq) WHERE state = 3;

CREATE SEQUENCE IF NOT EXISTS {p}keys_seq;

-- The object a queued event is about (its Meta's intake.order), for
-- ordered subscriptions: the pending events of an order key in stored
-- order (Backend.Heads). An enqueue locks its order keys (an advisory
-- lock per key, to the commit) before it draws a seq, so that a key's
-- seqs follow its commits.
ALTER TABLE {p}keys ADD COLUMN IF NOT EXISTS ordkey bytea;
CREATE INDEX IF NOT EXISTS {p}keys_order ON {p}keys (ordkey, seq) WHERE state = 1 AND ordkey IS NOT NULL;

-- The last version each subscription applied per order key
-- (intake.WithSkipStale), kept until expires_at.
CREATE TABLE IF NOT EXISTS {p}versions (
    sub        text        NOT NULL,
    ordkey     bytea       NOT NULL,
    version    bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (sub, ordkey)
);

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

-- The relay's feed: events in the order they were stored, by cursor.
CREATE TABLE IF NOT EXISTS {p}feed (
    cursor bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    event  bytea       NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}feed_at ON {p}feed (at);

-- A poller fleet's connections (package fleet), one row per account
-- polled. A claim moves next_due to the end of its lease, so that due
-- rows are exactly those with next_due <= now() (a claim whose lease ran
-- out is due again without a write); connections_due finds them in
-- order, and FOR UPDATE SKIP LOCKED hands each to one replica. token
-- fences a holder's writes: a claim, a pause and a resync change it.
CREATE TABLE IF NOT EXISTS {p}connections (
    id          text        PRIMARY KEY,
    source      text        NOT NULL,
    interval_us bigint      NOT NULL DEFAULT 0,
    credential  text        NOT NULL DEFAULT '',
    cursor      text        NOT NULL DEFAULT '',
    paused      text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    next_due    timestamptz NOT NULL,
    errors      integer     NOT NULL DEFAULT 0,
    last_poll   timestamptz,
    last_error  text        NOT NULL DEFAULT '',
    polls       bigint      NOT NULL DEFAULT 0,
    events      bigint      NOT NULL DEFAULT 0,
    holder      text,
    token       bigint      NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {p}connections_due ON {p}connections (next_due) WHERE paused = '';

-- Request budgets per credential (package budget): the state, JSON, of
-- each key, read and written under the row's lock.
CREATE TABLE IF NOT EXISTS {p}budgets (
    key   text  PRIMARY KEY,
    state jsonb NOT NULL
);
