package postgres

import "strings"

// queries holds the backend's SQL with the table prefix filled in.
// Durations are passed in microseconds.
type queries struct {
	claim, enqueue, state, commit, release, extend, adopt, cleanup string
	unadopt, start                                                 string
	checkSchema, schemaCurrent, bury, list, get, replay, discard   string
	replayMany, discardMany, doneUntil                             string
	heads, lastVersions, saveVersion, cleanVersions                string
	enqueueBatch                                                   string
	ackTx, ackTxWhy, ackBatch, ackTxCommit, ackBatchCommit         string
	loadCheckpoint, saveCheckpoint                                 string
	acquire, renew, releaseLease                                   string
}

// clearEvent resets a row's queued-event columns.
const clearEvent = `seq = NULL, key = NULL, event = NULL, source = NULL, type = NULL, attempts = 0, failure = NULL, done = NULL, started = false, ordkey = NULL`

// orderLocks takes, before any seq is drawn, a lock per order key of the
// events a statement stores ($n, bytea or bytea[]), in a fixed order, held
// to the commit: two events of one order key then draw their seqs in the
// order they commit, so that no holder sees a key's later event before an
// earlier one (dedupe.Orderer). The statement's insert must read the CTE
// (an InitPlan, run before its first row).
func orderLocks(param string) string {
	return `lk AS MATERIALIZED (
	SELECT pg_advisory_xact_lock(l) FROM (
		SELECT DISTINCT ('x' || substr(md5(o), 1, 16))::bit(64)::bigint AS l
		FROM unnest(` + param + `) AS o WHERE o IS NOT NULL ORDER BY 1) s
)`
}

func newQueries(p string) queries {
	q := queries{
		// Claim in one round trip: insert, or take over an expired row;
		// otherwise report the state of the live row. Returns 0 when claimed.
		claim: `
WITH ins AS (
	INSERT INTO {p}keys AS k (hash, state, expires_at, holder)
	VALUES ($1, 1, now() + $2 * interval '1 microsecond', $3)
	ON CONFLICT (hash) DO UPDATE
		SET state = 1, expires_at = EXCLUDED.expires_at, holder = EXCLUDED.holder, ` + clearEvent + `
		WHERE k.expires_at <= now() OR k.state = 3
	RETURNING 0::smallint AS st
)
SELECT st FROM ins
UNION ALL
SELECT state FROM {p}keys WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,

		enqueue: `
WITH ` + orderLocks("ARRAY[$8::bytea]") + `, ins AS (
	INSERT INTO {p}keys AS k (hash, state, expires_at, holder, seq, key, event, source, type, ordkey)
	SELECT $1, 1, now() + $2 * interval '1 microsecond', $3, nextval('{p}keys_seq'), $4, $5, $6, $7, $8
	WHERE (SELECT count(*) FROM lk) >= 0
	ON CONFLICT (hash) DO UPDATE
		SET state = 1, expires_at = EXCLUDED.expires_at, holder = EXCLUDED.holder, seq = EXCLUDED.seq,
			key = EXCLUDED.key, event = EXCLUDED.event, source = EXCLUDED.source, type = EXCLUDED.type,
			attempts = 0, failure = NULL, started = false, ordkey = EXCLUDED.ordkey
		WHERE (k.expires_at <= now() AND k.seq IS NULL) OR k.state = 3
	RETURNING 0::smallint AS st
)
SELECT st FROM ins
UNION ALL
SELECT state FROM {p}keys WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,

		state:     `SELECT state FROM {p}keys WHERE hash = $1`,
		doneUntil: `SELECT expires_at FROM {p}keys WHERE hash = $1 AND state = 2 AND expires_at > now()`,

		// A batch in one round trip: the keys already live are answered by
		// the read (no lock, no WAL: state as it is), the rest claimed by
		// one multi-row insert in the order given (sorted by hash); state 0
		// is claimed. A key in neither was taken by a concurrent claim.
		enqueueBatch: `
WITH ` + orderLocks("$8::bytea[]") + `, live AS MATERIALIZED (
	SELECT hash, state FROM {p}keys
	WHERE hash = ANY($1) AND state <> 3 AND (expires_at > now() OR seq IS NOT NULL)
), ins AS (
	INSERT INTO {p}keys AS k (hash, state, expires_at, holder, seq, key, event, source, type, ordkey)
	SELECT t.hash, 1, now() + t.lease * interval '1 microsecond', $3, nextval('{p}keys_seq'), t.key, t.event, t.source, t.type, t.ordkey
	FROM unnest($1::bytea[], $2::bigint[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[], $8::bytea[]) WITH ORDINALITY
		AS t(hash, lease, key, event, source, type, ordkey, ord)
	WHERE t.hash NOT IN (SELECT hash FROM live) AND (SELECT count(*) FROM lk) >= 0
	ORDER BY t.ord
	ON CONFLICT (hash) DO UPDATE
		SET state = 1, expires_at = EXCLUDED.expires_at, holder = EXCLUDED.holder, seq = EXCLUDED.seq,
			key = EXCLUDED.key, event = EXCLUDED.event, source = EXCLUDED.source, type = EXCLUDED.type,
			attempts = 0, failure = NULL, started = false, ordkey = EXCLUDED.ordkey
		WHERE (k.expires_at <= now() AND k.seq IS NULL) OR k.state = 3
	RETURNING k.hash
)
SELECT hash, 0::smallint FROM ins
UNION ALL
SELECT hash, state FROM live`,

		commit: `
INSERT INTO {p}keys AS k (hash, state, expires_at)
SELECT h, 2, now() + $2 * interval '1 microsecond' FROM unnest($1::bytea[]) AS h
ON CONFLICT (hash) DO UPDATE SET state = 2, expires_at = EXCLUDED.expires_at, holder = NULL, ` + clearEvent,

		release: `DELETE FROM {p}keys WHERE hash = $1 AND state = 1`,

		extend: `
UPDATE {p}keys SET expires_at = now() + $2 * interval '1 microsecond',
	holder = CASE WHEN $2 = 0 THEN NULL ELSE holder END
WHERE hash = ANY($1) AND holder = $3 AND state = 1`,

		// Adoptable: given back (no holder), or held by a holder whose
		// advisory lock is free (its process is gone). A live holder keeps
		// its events however long it pauses; $4 is the lock class. Never
		// this holder's own ($1): with its lock lost (its connection cut)
		// they look orphaned, but it has them in memory already. The
		// holders are found by a skip scan of keys_held (one index probe
		// per holder), and only the rows of the ones gone, and those given
		// back, are read: a live holder's backlog, however large, is not.
		// The given-back rows are ordered by (holder, seq), the index's
		// own order: "ORDER BY seq" alone under "holder IS NULL" made the
		// planner read every given-back row and sort them (a restart's
		// whole backlog, at every adoption). Rows are locked where they
		// are found and updated by their ctid: no lookup by hash, whose
		// index pages a large backlog no longer keeps in memory.
		adopt: `
WITH RECURSIVE holders AS (
	(SELECT holder FROM {p}keys WHERE state = 1 AND seq IS NOT NULL AND holder IS NOT NULL ORDER BY holder LIMIT 1)
	UNION ALL
	SELECT (SELECT k.holder FROM {p}keys k WHERE k.state = 1 AND k.seq IS NOT NULL AND k.holder > h.holder ORDER BY k.holder LIMIT 1)
	FROM holders h WHERE h.holder IS NOT NULL
), live AS MATERIALIZED (
	SELECT objid::bigint::text AS holder FROM pg_locks
	WHERE locktype = 'advisory' AND classid = $4::int::oid AND objsubid = 2 AND granted
), gone AS MATERIALIZED (
	SELECT holder FROM holders WHERE holder IS NOT NULL AND holder <> $1 AND holder NOT IN (SELECT holder FROM live)
), back AS MATERIALIZED (
	SELECT ctid AS tid, seq FROM {p}keys
	WHERE state = 1 AND seq IS NOT NULL AND holder IS NULL
	ORDER BY holder, seq LIMIT $3
	FOR UPDATE SKIP LOCKED
), orphaned AS MATERIALIZED (
	SELECT c.tid, c.seq FROM gone g CROSS JOIN LATERAL (
		SELECT ctid AS tid, seq FROM {p}keys
		WHERE state = 1 AND seq IS NOT NULL AND holder = g.holder
		ORDER BY seq LIMIT $3
		FOR UPDATE SKIP LOCKED
	) c
), picked AS (
	SELECT tid, crashed FROM (SELECT tid, seq, false AS crashed FROM back UNION ALL SELECT tid, seq, true FROM orphaned) x ORDER BY seq LIMIT $3
)
UPDATE {p}keys AS k SET holder = $1, expires_at = now() + $2 * interval '1 microsecond',
	attempts = k.attempts + CASE WHEN k.holder IS NOT NULL AND k.started THEN 1 ELSE 0 END, adopted = $5, started = false
FROM picked
WHERE k.ctid = picked.tid
RETURNING k.key, k.seq, k.event, k.attempts, k.done, picked.crashed`,

		// Marks this holder's ($2) queued events started (their delivery
		// begun): a crash counts an attempt only against those. A row
		// already started is not written again.
		start: `
UPDATE {p}keys SET started = true
WHERE hash = ANY($1) AND holder = $2 AND state = 1 AND seq IS NOT NULL AND NOT started`,

		// Gives back what the adoptions $2 of this holder ($1) took: their
		// replies were lost, so the holder never got those events.
		unadopt: `
UPDATE {p}keys SET holder = NULL, adopted = NULL
WHERE holder = $1 AND adopted = ANY($2) AND state = 1 AND seq IS NOT NULL`,

		// A transactional ack: the subscription added to the row's done
		// list, only while this holder ($2) holds the queued event and the
		// subscription is not in it yet. The UPDATE locks the row until
		// the caller's transaction ends, so adoption (FOR UPDATE SKIP
		// LOCKED) cannot take the event meanwhile, and finds it done after.
		ackTx: `
UPDATE {p}keys SET done = array_append(coalesce(done, '{}'), $3::bytea)
WHERE hash = $1 AND holder = $2 AND state = 1 AND seq IS NOT NULL AND NOT ($3::bytea = ANY(coalesce(done, '{}')))`,
		// The ack of the last subscription, which commits the key
		// itself (for $4 µs), fenced the same way.
		ackTxCommit: `
UPDATE {p}keys SET state = 2, expires_at = now() + $4 * interval '1 microsecond', holder = NULL, ` + clearEvent + `
WHERE hash = $1 AND holder = $2 AND state = 1 AND seq IS NOT NULL AND NOT ($3::bytea = ANY(coalesce(done, '{}')))`,
		// Why it changed nothing: true when this holder holds the event
		// and the subscription already acked it; otherwise not held.
		ackTxWhy: `
SELECT coalesce(holder = $2 AND state = 1 AND seq IS NOT NULL AND $3::bytea = ANY(done), false) FROM {p}keys WHERE hash = $1`,

		// The first n pending events of each order key, in stored order.
		heads: `
SELECT o.k, x.key, x.source, x.type FROM unnest($1::bytea[]) AS o(k)
CROSS JOIN LATERAL (
	SELECT key, source, type, seq FROM {p}keys
	WHERE ordkey = o.k AND state = 1 AND seq IS NOT NULL
	ORDER BY seq LIMIT $2
) x
ORDER BY o.k, x.seq`,

		lastVersions: `SELECT ordkey, version FROM {p}versions WHERE sub = $1 AND ordkey = ANY($2) AND expires_at > now()`,
		saveVersion: `
INSERT INTO {p}versions AS v (sub, ordkey, version, expires_at)
VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
ON CONFLICT (sub, ordkey) DO UPDATE SET
	version = CASE WHEN v.expires_at <= now() THEN EXCLUDED.version ELSE greatest(v.version, EXCLUDED.version) END,
	expires_at = EXCLUDED.expires_at`,
		cleanVersions: `
DELETE FROM {p}versions WHERE (sub, ordkey) IN (
	SELECT sub, ordkey FROM {p}versions WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
)`,

		cleanup: `
DELETE FROM {p}keys WHERE hash IN (
	SELECT hash FROM {p}keys
	WHERE expires_at <= now() AND (seq IS NULL OR state = 3)
	ORDER BY expires_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED
)`,

		bury: `
UPDATE {p}keys SET state = 3, expires_at = now() + $2 * interval '1 microsecond', holder = NULL,
	attempts = $3, failure = $4
WHERE hash = $1 AND seq IS NOT NULL`,

		// state $1: 0 any, 1 queued, 3 dead; source and type NULL: any.
		list: `
SELECT key, seq, state, attempts, failure, event FROM {p}keys
WHERE seq IS NOT NULL AND state IN (1, 3) AND ($1 = 0 OR state = $1)
	AND ($2::bytea IS NULL OR source = $2) AND ($3::bytea IS NULL OR type = $3) AND seq > $4
ORDER BY seq LIMIT $5`,
		get: `SELECT key, seq, state, attempts, failure, event FROM {p}keys WHERE hash = $1 AND seq IS NOT NULL AND state IN (1, 3)`,
		replay: `
UPDATE {p}keys SET state = 1, attempts = 0, failure = NULL, holder = NULL, expires_at = now(), started = false
WHERE hash = $1 AND state = 3`,
		discard: `DELETE FROM {p}keys WHERE hash = $1 AND seq IS NOT NULL AND state IN (1, 3)`,

		// Whether the schema is this version's, read from the catalog
		// alone (to_regclass takes no lock on a table): every table,
		// column, index and sequence schema.sql makes, and none it drops.
		schemaCurrent: `
SELECT (SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = '{p}keys' AND column_name IN ('hash', 'event', 'attempts', 'done', 'adopted', 'started')) = 6
	AND to_regclass('{p}keys_expirable') IS NOT NULL AND to_regclass('{p}keys_held') IS NOT NULL
	AND to_regclass('{p}keys_dead') IS NOT NULL AND to_regclass('{p}keys_seq') IS NOT NULL
	AND to_regclass('{p}checkpoints') IS NOT NULL AND to_regclass('{p}leases') IS NOT NULL
	AND to_regclass('{p}feed') IS NOT NULL AND to_regclass('{p}feed_at') IS NOT NULL
	AND to_regclass('{p}connections') IS NOT NULL AND to_regclass('{p}connections_due') IS NOT NULL
	AND to_regclass('{p}budgets') IS NOT NULL
	AND to_regclass('{p}keys_order') IS NOT NULL AND to_regclass('{p}versions') IS NOT NULL
	AND to_regclass('{p}keys_expires_at') IS NULL AND to_regclass('{p}keys_queued') IS NULL`,

		// The columns of this version: tables made by an earlier one lack them.
		checkSchema: `SELECT count(*), count(*) FILTER (WHERE column_name IN ('hash', 'event', 'attempts'))
FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{p}keys'`,

		loadCheckpoint: `SELECT cursor FROM {p}checkpoints WHERE name = $1`,
		saveCheckpoint: `
INSERT INTO {p}checkpoints (name, cursor) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()`,

		acquire: `
INSERT INTO {p}leases AS l (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 microsecond')
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
	WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
RETURNING 1`,
		renew: `
UPDATE {p}leases SET expires_at = now() + $3 * interval '1 microsecond'
WHERE name = $1 AND holder = $2 AND expires_at > now()
RETURNING 1`,
		releaseLease: `DELETE FROM {p}leases WHERE name = $1 AND holder = $2`,
	}
	// The acks in a batch, whose statements commit or roll back together:
	// the same UPDATE, made to fail (at run time, ackFailed in its
	// message) when it wrote nothing, so the batch fails with it.
	q.ackBatch, q.ackBatchCommit = failUnlessOne(q.ackTx), failUnlessOne(q.ackTxCommit)
	// Replay and discard of many keys: the same statements over a list.
	q.replayMany = strings.Replace(q.replay, "hash = $1", "hash = ANY($1)", 1)
	q.discardMany = strings.Replace(q.discard, "hash = $1", "hash = ANY($1)", 1)
	for _, s := range []*string{&q.heads, &q.lastVersions, &q.saveVersion, &q.cleanVersions, &q.enqueueBatch, &q.ackTx, &q.ackTxWhy, &q.ackBatch, &q.ackTxCommit, &q.ackBatchCommit, &q.claim, &q.enqueue, &q.state, &q.commit, &q.release, &q.extend, &q.adopt, &q.unadopt, &q.start, &q.cleanup, &q.checkSchema, &q.schemaCurrent, &q.bury, &q.list, &q.get, &q.replay, &q.discard, &q.replayMany, &q.discardMany, &q.doneUntil,
		&q.loadCheckpoint, &q.saveCheckpoint, &q.acquire, &q.renew, &q.releaseLease} {
		*s = strings.ReplaceAll(*s, "{p}", p)
	}
	return q
}

// failUnlessOne wraps an UPDATE so that it fails when it changes no row:
// a cast of a string that is not a constant, which the planner cannot
// fold, raises the error only when it runs.
func failUnlessOne(update string) string {
	return "WITH u AS (" + update + "\n\tRETURNING 1\n)\nSELECT CASE WHEN n = 1 THEN 1 ELSE ('" + ackFailed + " ' || n)::int END FROM (SELECT count(*) AS n FROM u) c"
}
