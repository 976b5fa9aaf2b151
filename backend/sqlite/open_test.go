package sqlite_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/intakehq/intake/backend/sqlite"
)

// A directory where the database file goes: SQLite says "unable to open
// database file: out of memory (14)"; Open says what is wrong, and the
// error matches syscall.EISDIR.
func TestOpenADirectory(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(dir)
	if err == nil {
		b.Close()
		t.Fatal("Open of a directory succeeded")
	}
	if !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "out of memory") {
		t.Errorf("Open of a directory: %v; want an error naming it, matching syscall.EISDIR", err)
	}
}
