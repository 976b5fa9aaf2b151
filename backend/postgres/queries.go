package postgres

import "strings"

// queries holds the backend's SQL with the table prefix filled in.
// Durations are passed in microseconds.
type queries struct {
	claim, enqueue, state, commit, release, extend, adopt, cleanup string
	checkSchema                                                    string
	loadCheckpoint, saveCheckpoint                                 string
	acquire, renew, releaseLease                                   string
}

// clearEvent resets a row's queued-event columns.
const clearEvent = `seq = NULL, key = NULL, event = NULL`

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
		WHERE k.expires_at <= now()
	RETURNING 0::smallint AS st
)
SELECT st FROM ins
UNION ALL
SELECT state FROM {p}keys WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,

		enqueue: `
WITH ins AS (
	INSERT INTO {p}keys AS k (hash, state, expires_at, holder, seq, key, event)
	VALUES ($1, 1, now() + $2 * interval '1 microsecond', $3, nextval('{p}keys_seq'), $4, $5)
	ON CONFLICT (hash) DO UPDATE
		SET state = 1, expires_at = EXCLUDED.expires_at, holder = EXCLUDED.holder, seq = EXCLUDED.seq,
			key = EXCLUDED.key, event = EXCLUDED.event
		WHERE k.expires_at <= now()
	RETURNING 0::smallint AS st
)
SELECT st FROM ins
UNION ALL
SELECT state FROM {p}keys WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,

		state: `SELECT state FROM {p}keys WHERE hash = $1`,

		commit: `
INSERT INTO {p}keys AS k (hash, state, expires_at)
SELECT h, 2, now() + $2 * interval '1 microsecond' FROM unnest($1::bytea[]) AS h
ON CONFLICT (hash) DO UPDATE SET state = 2, expires_at = EXCLUDED.expires_at, holder = NULL, ` + clearEvent,

		release: `DELETE FROM {p}keys WHERE hash = $1 AND state = 1`,

		extend: `
UPDATE {p}keys SET expires_at = now() + $2 * interval '1 microsecond'
WHERE hash = ANY($1) AND holder = $3 AND state = 1`,

		adopt: `
UPDATE {p}keys AS k SET holder = $1, expires_at = now() + $2 * interval '1 microsecond'
FROM (
	SELECT hash FROM {p}keys
	WHERE state = 1 AND seq IS NOT NULL AND expires_at <= now()
	ORDER BY seq
	LIMIT $3
	FOR UPDATE SKIP LOCKED
) AS picked
WHERE k.hash = picked.hash
RETURNING k.key, k.seq, k.event`,

		cleanup: `
DELETE FROM {p}keys WHERE hash IN (
	SELECT hash FROM {p}keys
	WHERE expires_at <= now() AND seq IS NULL
	ORDER BY expires_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED
)`,

		// The columns of this version: tables made by an earlier one lack them.
		checkSchema: `SELECT count(*), count(*) FILTER (WHERE column_name IN ('hash', 'event'))
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
	for _, s := range []*string{&q.claim, &q.enqueue, &q.state, &q.commit, &q.release, &q.extend, &q.adopt, &q.cleanup, &q.checkSchema,
		&q.loadCheckpoint, &q.saveCheckpoint, &q.acquire, &q.renew, &q.releaseLease} {
		*s = strings.ReplaceAll(*s, "{p}", p)
	}
	return q
}
