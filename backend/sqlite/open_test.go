package sqlite_test

import (
	"errors"
	"io/fs"
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

// An empty path or ":memory:" gives each connection of the pool a
// database of its own: the tables made on one are missing on the next
// ("no such table", at random). Open refuses both and says to name a
// file.
func TestOpenNoFile(t *testing.T) {
	for _, path := range []string{"", ":memory:"} {
		b, err := sqlite.Open(path)
		if err == nil {
			b.Close()
			t.Errorf("Open(%q) succeeded", path)
			continue
		}
		if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "name a file") {
			t.Errorf("Open(%q): %v; want fs.ErrInvalid, saying to name a file", path, err)
		}
	}
}
