//go:build !unix

package sqlite

import "errors"

// holderLock is not available on this platform: crashed holders' events
// are adopted when their claim lease ends.
type holderLock struct{}

func openHolderLock(string, string) (*holderLock, error) { return nil, errors.New("no flock") }

func (*holderLock) gone(string) bool { return false }

func (*holderLock) close() error { return nil }
