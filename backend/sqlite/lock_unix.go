//go:build unix

package sqlite

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// holderLock is an exclusive flock on a file of the holder's own beside
// the database, held while the Backend is open. The kernel drops it when
// the process dies, so another Backend that can take it knows the holder
// is gone, and that its claims are orphans to adopt at once.
type holderLock struct {
	f      *os.File
	prefix string // the path of a holder's lock file, without the holder
}

const lockSuffix = ".lock"

func openHolderLock(dbFile, holder string) (*holderLock, error) {
	l := &holderLock{prefix: dbFile + "-intake-holder-"}
	f, err := os.OpenFile(l.prefix+holder+lockSuffix, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	l.f = f
	return l, nil
}

// gone reports whether holder's process is gone: its lock file is missing
// or can be locked. It removes the file of a holder found gone.
func (l *holderLock) gone(holder string) bool {
	path := l.prefix + holder + lockSuffix
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false // held: alive
	}
	_ = os.Remove(path)
	return true
}

func (l *holderLock) close() error {
	_ = os.Remove(l.f.Name())
	return l.f.Close()
}
