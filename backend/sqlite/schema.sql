-- intake's tables in SQLite; {p} is the table prefix (default "intake_").
-- Times are unix nanoseconds.

-- One row per idempotency key, the key's bytes as a BLOB (any length, any
-- bytes). state 1 = pending (claimed until expires_at by holder; holder
-- NULL: given back), 2 = done (remembered until expires_at), 3 = dead
-- (kept until expires_at). A pending or dead row with seq set holds an
-- event, in event as event.MarshalBinary encodes it, byte-exact, with its
-- source and type for filtering, the attempts counted across processes,
-- and failure (JSON) why it died; seq orders the queue. done lists the
-- subscriptions that acked the event inside a transaction of their own
-- (Backend.AckTx), each as |hex(name)|, so that adoption skips them.
-- started is 1 once the holder began delivering the event
-- (Backend.Start): a crash of its holder counts an attempt only then.
CREATE TABLE IF NOT EXISTS {p}keys (
    key         BLOB    PRIMARY KEY,
    state       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    holder      TEXT,
    seq         INTEGER,
    event       BLOB,
    source      BLOB,
    type        BLOB,
    attempts    INTEGER NOT NULL DEFAULT 0,
    failure     BLOB,
    done        TEXT,
    started     INTEGER NOT NULL DEFAULT 0
);

-- Expired keys are found through this index, in bounded batches.
CREATE INDEX IF NOT EXISTS {p}keys_expires_at ON {p}keys (expires_at);

-- Queued events in order, for adoption.
CREATE INDEX IF NOT EXISTS {p}keys_queued ON {p}keys (seq) WHERE state = 1 AND seq IS NOT NULL;

-- Queued events by holder, in order: adoption finds the holders (a skip
-- scan over this index) and reads, in order, only the rows given back
-- (holder NULL), those of holders that are gone, and the expired ones of
-- the others: never a whole backlog to take a batch of it.
CREATE INDEX IF NOT EXISTS {p}keys_held ON {p}keys (holder, seq) WHERE state = 1 AND seq IS NOT NULL;

-- Dead events in order, for inspection.
CREATE INDEX IF NOT EXISTS {p}keys_dead ON {p}keys (seq) WHERE state = 3;

-- The last seq drawn (one row): a restart draws the next, never one a
-- committed key had, so that seqs follow the order events were stored.
CREATE TABLE IF NOT EXISTS {p}seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);

-- The last version each subscription applied per order key
-- (intake.WithSkipStale), kept until expires_at (unix nanoseconds).
CREATE TABLE IF NOT EXISTS {p}versions (
    sub        TEXT    NOT NULL,
    ordkey     BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (sub, ordkey)
);

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

-- The relay's feed: events in the order they were stored, by cursor.
CREATE TABLE IF NOT EXISTS {p}feed (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    event  BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}feed_at ON {p}feed (at);

-- A poller fleet's connections (package fleet), one row per account
-- polled; times in Unix nanoseconds. A claim moves next_due to the end of
-- its lease, so that due rows are those with next_due <= now; token
-- fences a holder's writes.
CREATE TABLE IF NOT EXISTS {p}connections (
    id          TEXT    PRIMARY KEY,
    source      TEXT    NOT NULL,
    interval_ns INTEGER NOT NULL DEFAULT 0,
    credential  TEXT    NOT NULL DEFAULT '',
    cursor      TEXT    NOT NULL DEFAULT '',
    paused      TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    next_due    INTEGER NOT NULL,
    errors      INTEGER NOT NULL DEFAULT 0,
    last_poll   INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    polls       INTEGER NOT NULL DEFAULT 0,
    events      INTEGER NOT NULL DEFAULT 0,
    holder      TEXT,
    token       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {p}connections_due ON {p}connections (next_due) WHERE paused = '';

-- Request budgets per credential (package budget): each key's state, JSON.
CREATE TABLE IF NOT EXISTS {p}budgets (
    key   TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
