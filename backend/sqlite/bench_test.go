package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/intaketest"
)

// BenchmarkPutAck measures a stream's Put → deliver → Ack throughput with
// the SQLite queue (group commit, synchronous FULL and NORMAL) against the
// in-memory default in the same run, from 32 concurrent putters:
//
//	go test ./backend/sqlite -run x -bench PutAck -benchtime 20000x
func BenchmarkPutAck(b *testing.B) {
	b.Run("queue=memory", func(b *testing.B) { intaketest.PutAck(b, nil) })
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run("queue=sqlite-"+mode, func(b *testing.B) {
			q, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"), sqlite.WithSynchronous(mode))
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			intaketest.PutAck(b, q)
		})
	}
}
