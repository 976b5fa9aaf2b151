package intake

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/tracing"
)

// Option configures a [Stream]. A zero value given to an option means its
// documented default; a negative one makes the option panic, since it
// could only turn into a busy loop or an endless redelivery.
type Option func(*config)

type config struct {
	store          dedupe.Store
	queue          dedupe.Queue
	queueSize      int
	retention      time.Duration
	claimLease     time.Duration // 0: the default for a store or a queue
	drainTimeout   time.Duration
	retryAfter     time.Duration
	restartMin     time.Duration
	restartMax     time.Duration
	logger         *slog.Logger
	metrics        metric.Recorder
	tracer         tracing.Tracer
	healthInterval time.Duration
	orderKey       func(event.Event) string
	version        func(event.Event) (int64, bool)
}

// The defaults, each written in its option's doc.
const (
	defaultQueueSize    = 10_000
	defaultRetention    = 7 * 24 * time.Hour
	defaultDrainTimeout = 10 * time.Second
	defaultRetryAfter   = time.Second
	defaultRestartMin   = time.Second
	defaultRestartMax   = time.Minute
	defaultAckTimeout   = 30 * time.Second
	// The default retry policy rides out a day's outage downstream: 30
	// attempts, 1 s doubling to 2 h with ±20% jitter, are at least 27
	// hours from the first failure to the last attempt (Stripe retries
	// for three days; River 25 times over about three weeks).
	defaultRetryMin    = time.Second
	defaultRetryMax    = 2 * time.Hour
	defaultMaxAttempts = 30
	defaultHealth      = 2 * time.Second
	// defaultMaxRetryAfter caps a server's Retry-After, as the poller's
	// WithMaxRetryAfter does.
	defaultMaxRetryAfter = 15 * time.Minute
)

func defaultConfig() config {
	return config{
		queueSize:      defaultQueueSize,
		retention:      defaultRetention,
		drainTimeout:   defaultDrainTimeout,
		retryAfter:     defaultRetryAfter,
		restartMin:     defaultRestartMin,
		restartMax:     defaultRestartMax,
		metrics:        metric.Discard{},
		healthInterval: defaultHealth,
	}
}

// positive returns d, or def when d is zero; it panics when d is negative.
func positive(option string, d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		panic(fmt.Sprintf("intake: %s(%v): must not be negative (0 means the default, %v)", option, d, def))
	case d == 0:
		return def
	}
	return d
}

// count is positive for ints.
func count(option string, n, def int) int {
	switch {
	case n < 0:
		panic(fmt.Sprintf("intake: %s(%d): must not be negative (0 means the default, %d)", option, n, def))
	case n == 0:
		return def
	}
	return n
}

// backoffRange validates an initial and a maximum delay.
func backoffRange(option string, initial, maxDelay, defMin, defMax time.Duration) (time.Duration, time.Duration) {
	initial = positive(option, initial, defMin)
	maxDelay = positive(option, maxDelay, max(defMax, initial))
	if initial > maxDelay {
		panic(fmt.Sprintf("intake: %s(%v, %v): the initial delay exceeds the maximum", option, initial, maxDelay))
	}
	return initial, maxDelay
}

// WithStore sets the idempotency store. Defaults to a [dedupe.Memory] with
// its default capacity: keys live only as long as the process. It cannot
// be combined with [WithQueue].
func WithStore(s dedupe.Store) Option { return func(c *config) { c.store = s } }

// WithQueueSize bounds the number of events stored but not yet acked by
// every subscription and committed. When it is reached, Put returns
// [event.ErrQueueFull] for a new event and a webhook answers 503.
// Defaults to 10,000.
func WithQueueSize(n int) Option {
	n = count("WithQueueSize", n, defaultQueueSize)
	return func(c *config) { c.queueSize = n }
}

// WithRetention sets how long a committed key is remembered, so that a
// redelivery of the same event within it is suppressed. Defaults to 7 days,
// longer than Stripe's 3 days and Standard Webhooks' 75 hours of retries.
func WithRetention(d time.Duration) Option {
	d = positive("WithRetention", d, defaultRetention)
	return func(c *config) { c.retention = d }
}

// WithClaimLease sets how long a claimed key blocks duplicates while its
// event waits in the queue and is delivered. A claim whose holder died
// (a crashed replica) frees the key when the lease ends. With the store
// alone it must exceed the time an event spends queued and in delivery,
// and defaults to 15 minutes; with a durable queue ([WithQueue]) the stream
// renews it every third of it, and it defaults to 30 seconds.
func WithClaimLease(d time.Duration) Option {
	d = positive("WithClaimLease", d, 0)
	return func(c *config) { c.claimLease = d }
}

// WithDrainTimeout bounds how long Run, once its context is done, keeps
// delivering what is queued before it gives up, cancels the handlers'
// contexts, releases (or gives back) what is left, and returns: within
// the drain timeout and a second, even when a handler ignores its context
// (then with [ErrHandlerStuck]). Defaults to 10 seconds.
func WithDrainTimeout(d time.Duration) Option {
	d = positive("WithDrainTimeout", d, defaultDrainTimeout)
	return func(c *config) { c.drainTimeout = d }
}

// WithRetryAfter sets the delay suggested to a source when the queue is
// full or the stream is not running (a webhook's Retry-After). Defaults to
// 1 second.
func WithRetryAfter(d time.Duration) Option {
	d = positive("WithRetryAfter", d, defaultRetryAfter)
	return func(c *config) { c.retryAfter = d }
}

// WithSourceRestart sets the exponential backoff between restarts of a
// source whose Run returned an error. Defaults to 1 second growing to 1
// minute; it never gives up. It panics if initial exceeds max.
func WithSourceRestart(initial, max time.Duration) Option {
	initial, max = backoffRange("WithSourceRestart", initial, max, defaultRestartMin, defaultRestartMax)
	return func(c *config) { c.restartMin, c.restartMax = initial, max }
}

// WithHealthInterval sets how often, while Run runs, the store or queue
// is pinged for [Stream.Health] (when it is a [Pinger]): an outage shows
// as not ready within one interval, and recovery too. Defaults to 2
// seconds.
func WithHealthInterval(d time.Duration) Option {
	d = positive("WithHealthInterval", d, defaultHealth)
	return func(c *config) { c.healthInterval = d }
}

// WithLogger sets the logger. Records carry the source name, the event id
// and a reason; never a payload or a secret. Defaults to [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMetrics sets the recorder of counters and latencies. Defaults to
// [metric.Discard].
func WithMetrics(r metric.Recorder) Option {
	if r == nil {
		r = metric.Discard{}
	}
	return func(c *config) { c.metrics = r }
}

// WithTracer makes each call of a handler given to [Stream.Handle] a
// consumer span ("process" and the event's source), linked to the
// context the event was created in (its Meta's traceparent, which the
// webhook handler and the poller set when they trace: see package
// [tracing]), with the event's source, type, id, via, the attempt, the
// subscription and the outcome ("ack", "retry", "dead"). The handler's
// context carries the span, so its own spans are its children. Defaults
// to none. A channel from [Stream.Subscribe] gets no spans: the stream
// cannot see where its reader's work ends.
func WithTracer(t tracing.Tracer) Option { return func(c *config) { c.tracer = t } }

// SubscribeOption configures a subscription made by [Stream.Subscribe] or
// [Stream.Handle]. As with [Option], zero means the default and a negative
// value panics.
type SubscribeOption func(*subConfig)

type subConfig struct {
	sources       map[string]bool
	types         map[string]bool
	ackTimeout    time.Duration
	maxAttempts   int
	deadLetter    func(context.Context, DeadLetter)
	retryMin      time.Duration
	retryMax      time.Duration
	retryAfterMax time.Duration
	workers       int
	name          string
	unordered     bool
	skipStale     bool
}

func defaultSubConfig() subConfig {
	return subConfig{ackTimeout: defaultAckTimeout, retryMin: defaultRetryMin, retryMax: defaultRetryMax, retryAfterMax: defaultMaxRetryAfter}
}

// WithSources limits the subscription to events from the named sources.
// Events of other sources count as acked by it. Defaults to every source.
func WithSources(names ...string) SubscribeOption {
	return func(c *subConfig) { c.sources = set(c.sources, names) }
}

// WithTypes limits the subscription to events of the given types. Events of
// other types count as acked by it. Defaults to every type.
func WithTypes(types ...string) SubscribeOption {
	return func(c *subConfig) { c.types = set(c.types, types) }
}

func set(m map[string]bool, keys []string) map[string]bool {
	if m == nil {
		m = make(map[string]bool, len(keys))
	}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// WithAckTimeout sets how long a delivery may go unacked before it is
// delivered again (its lease). For [Stream.Handle] it is also the deadline
// of each call of the handler. Defaults to 30 seconds.
func WithAckTimeout(d time.Duration) SubscribeOption {
	d = positive("WithAckTimeout", d, defaultAckTimeout)
	return func(c *subConfig) { c.ackTimeout = d }
}

// WithMaxAttempts sets how many deliveries an event gets before it goes to
// the dead-letter function and is kept as dead (not committed: it can be
// listed, replayed or discarded). Zero means no limit. Defaults to no limit
// for Subscribe and 30 for Handle: with the default backoff, at least 27
// hours of retries (see [WithRetryBackoff]), so that an outage of the
// handler's database for a day dead-letters nothing. A handler whose
// failures are final returns [Permanent] instead.
func WithMaxAttempts(n int) SubscribeOption {
	if n < 0 {
		panic(fmt.Sprintf("intake: WithMaxAttempts(%d): must not be negative (0 means no limit)", n))
	}
	return func(c *subConfig) { c.maxAttempts = n }
}

// DeadLetter is an event that ran out of attempts in one subscription,
// as [WithDeadLetter]'s function receives it.
type DeadLetter struct {
	Event        event.Event
	Err          error       // the last attempt's error (or the ack timeout)
	Class        event.Class // the last error's: Permanent, or Transient when the attempts ran out
	Attempts     int         // deliveries counted, across restarts with a durable queue
	First, Last  time.Time   // the first and the last attempt
	Subscription string      // the subscription's name (see [WithName])
}

// WithDeadLetter sets a function told of each event that runs out of
// attempts (or whose handler returned a [Permanent] error). The event is
// not lost either way: the stream keeps it as dead, in the durable queue
// or in memory, to list, replay or discard (see [Stream.List]), and a new
// arrival of its key delivers it again. The function gets a context that
// ends with Run's; it should not block for long. Defaults to logging the
// event at error level.
func WithDeadLetter(fn func(ctx context.Context, d DeadLetter)) SubscribeOption {
	return func(c *subConfig) { c.deadLetter = fn }
}

// WithRetryBackoff sets the delay before a nacked delivery is delivered
// again: initial after the first failure, doubling up to max, with ±20%
// jitter. Defaults to 1 second and 2 hours: with Handle's 30 attempts,
// retries spread over at least 27 hours. It panics if
// initial exceeds max.
func WithRetryBackoff(initial, max time.Duration) SubscribeOption {
	initial, max = backoffRange("WithRetryBackoff", initial, max, defaultRetryMin, defaultRetryMax)
	return func(c *subConfig) { c.retryMin, c.retryMax = initial, max }
}

// WithMaxRetryAfter caps the delay a handler's error may ask for (an
// API's Retry-After carried by [event.RetryAfter]): the event is retried
// no sooner than the delay asked, up to d, even when that is longer than
// the [WithRetryBackoff] maximum. Defaults to 15 minutes, as the poller's
// own cap; zero means the default, and it panics if d is negative.
func WithMaxRetryAfter(d time.Duration) SubscribeOption {
	d = positive("WithMaxRetryAfter", d, defaultMaxRetryAfter)
	return func(c *subConfig) { c.retryAfterMax = d }
}

// WithWorkers sets how many calls of a [Stream.Handle] function run at
// once. Subscribe ignores it. Defaults to 1.
func WithWorkers(n int) SubscribeOption {
	n = count("WithWorkers", n, 1)
	return func(c *subConfig) { c.workers = n }
}

// WithName names the subscription in logs and metrics. Defaults to
// "sub-N" in the order of subscription.
func WithName(name string) SubscribeOption {
	return func(c *subConfig) { c.name = name }
}
