package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
)

// Issue #22, item 4: after a restart SQLite's adoption reads what it takes,
// not the backlog: every statement it runs searches keys_held (or the
// primary key) and none scans the keys table or sorts it. Checked with
// EXPLAIN QUERY PLAN over a backlog given back and one of a gone holder.
func TestAdoptSearchesNeverScans(t *testing.T) {
	b, err := Open(filepath.Join(t.TempDir(), "adopt.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db := b.db
	enc, err := event.Event{Source: "api", ID: "x"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO `+b.t.keys+` (key, state, expires_at, holder, seq, event)
		WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 20000)
		SELECT CAST('k' || i AS BLOB), 1, 0, CASE WHEN i % 2 = 0 THEN NULL ELSE 'gone' END, i, ? FROM g`, enc); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	q := adoptSQL(b.t.keys)
	for name, c := range map[string]struct {
		sql  string
		args []any
	}{
		"given back":     {q.givenBack, []any{1000}},
		"a gone holder":  {q.gone, []any{"gone", 1000}},
		"expired claims": {q.expired, []any{"gone", 5, 1000}},
		"holders":        {q.holders, nil},
	} {
		rows, err := db.Query(`EXPLAIN QUERY PLAN `+c.sql, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		t.Logf("%s: %s", name, joined)
		if name != "holders" && !strings.Contains(joined, "USING INDEX "+b.t.keys+"_held (holder=? AND seq>?)") {
			t.Errorf("%s does not read one holder's rows in order: %s", name, joined)
		}
		for _, step := range plan {
			if strings.Contains(step, "TEMP B-TREE") || strings.HasPrefix(step, "SCAN "+b.t.keys) || strings.HasPrefix(step, "SCAN k") {
				t.Errorf("%s reads the backlog: %s", name, joined)
			}
		}
	}
	// And it works: 1,000 taken, the oldest first, from both kinds.
	got, err := b.Adopt(t.Context(), 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 || got[0].Key != "k1" || got[1].Key != "k2" {
		t.Fatalf("adopted %d, first %q, %q", len(got), got[0].Key, got[1].Key)
	}
}
