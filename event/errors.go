package event

import (
	"errors"
	"time"
)

// Errors a [Sink] returns from Put. Match them with [errors.Is]: the sink
// may wrap them, and the retryable ones come inside a [*RetryError].
var (
	// ErrDuplicate means the event's key is done: it was delivered and
	// committed within the retention window. Not a failure: a webhook answers
	// 200 and a poller moves on.
	ErrDuplicate = errors.New("intake: duplicate event, already done")

	// ErrPending means another claim holds the event's key and has neither
	// committed nor released it yet. A webhook answers 409 with Retry-After,
	// since the holder may still fail.
	ErrPending = errors.New("intake: duplicate event, pending elsewhere")

	// ErrQueueFull means the queue has no room now. Nothing was recorded;
	// put the event again later.
	ErrQueueFull = errors.New("intake: queue full")

	// ErrNotRunning means the sink is not running yet.
	ErrNotRunning = errors.New("intake: stream not running")

	// ErrClosed means the sink is shutting down or has stopped.
	ErrClosed = errors.New("intake: stream closed")
)

// RetryError is an error that suggests a delay before trying again: a full
// queue, a server's Retry-After, a store outage. Its Unwrap returns Err, so
// errors.Is sees through it.
type RetryError struct {
	After time.Duration // suggested delay; zero means "soon"
	Err   error
}

// RetryAfter returns err wrapped with a suggested delay d.
func RetryAfter(d time.Duration, err error) error {
	return &RetryError{After: d, Err: err}
}

// Error returns the wrapped error's text.
func (e *RetryError) Error() string {
	if e.Err == nil {
		return "intake: retry later"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryDelay reports the delay suggested by the first [*RetryError] in
// err's chain, and whether there was one.
func RetryDelay(err error) (time.Duration, bool) {
	var re *RetryError
	if errors.As(err, &re) {
		return re.After, true
	}
	return 0, false
}

// ErrInvalid means the event cannot be accepted as it is: it has no ID or
// no Source. It is not retryable.
var ErrInvalid = errors.New("intake: invalid event")
