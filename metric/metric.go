// Package metric is the small hook through which intake reports counters,
// gauges and latencies, so that an OpenTelemetry or Prometheus adapter can
// export them without the core importing either.
//
// Every name intake reports is a constant below; labels are the source name
// and, where it applies, a reason. Implementations must be safe for
// concurrent use and should be cheap: some calls sit on the webhook ack
// path.
package metric

import "time"

// Recorder receives intake's measurements.
type Recorder interface {
	// Count adds delta to the counter name for the given source and reason
	// (reason may be empty).
	Count(name, source, reason string, delta int64)
	// Gauge sets the gauge name to v.
	Gauge(name, source string, v float64)
	// Observe records one duration in the histogram name.
	Observe(name, source string, d time.Duration)
}

// Discard is a Recorder that records nothing. It is the default.
type Discard struct{}

func (Discard) Count(string, string, string, int64)   {}
func (Discard) Gauge(string, string, float64)         {}
func (Discard) Observe(string, string, time.Duration) {}

// Names of the measurements intake reports.
const (
	// Stream.
	Accepted    = "intake_events_accepted_total"   // Put stored the event
	Duplicate   = "intake_events_duplicate_total"  // reason: "done" or "pending"
	Rejected    = "intake_events_rejected_total"   // reason: "full", "closed", "store", ...
	Delivered   = "intake_deliveries_total"        // one per delivery attempt
	Acked       = "intake_acks_total"              //
	Nacked      = "intake_nacks_total"             // reason: "nack" or "lease"
	DeadLetter  = "intake_dead_letter_total"       //
	Committed   = "intake_events_committed_total"  // every subscription acked
	Dropped     = "intake_events_dropped_total"    // undelivered at shutdown
	QueueDepth  = "intake_queue_depth"             // gauge
	Processing  = "intake_processing_seconds"      // Put to final ack
	SourceError = "intake_source_errors_total"     // a source's Run failed
	Stale       = "intake_events_stale_total"      // skipped: older than the version applied (WithSkipStale)
	Failed      = "intake_deliveries_failed_total" // a handler's error (or a reader's Nack), retried or dead-lettered

	// Webhook handler.
	Received   = "intake_webhook_requests_total" // reason: HTTP status class or rejection reason
	AckLatency = "intake_webhook_ack_seconds"    // request start to response

	// Poller.
	Polls       = "intake_polls_total"          // one per fetch
	EmptyPolls  = "intake_polls_empty_total"    // fetch returned no events
	NotModified = "intake_polls_304_total"      // conditional request answered 304
	PollErrors  = "intake_poll_errors_total"    //
	Backoff     = "intake_poll_backoff_seconds" // delay chosen after an error

	// Fetch on demand (package fetch).
	Fetched     = "intake_fetches_total"           // one per request for an object
	Coalesced   = "intake_fetches_coalesced_total" // events served by another event's fetch
	FetchFailed = "intake_fetch_errors_total"      //

	// Poller fleets (package fleet) and budgets (package budget).
	FleetPaused     = "intake_fleet_paused_total"    // connections paused for a refused credential
	BudgetRequests  = "intake_budget_requests_total" // slots reserved
	BudgetWait      = "intake_budget_wait_seconds"   // the wait a slot asked for
	BudgetLimited   = "intake_budget_limited_total"  // 429 answers
	BudgetRemaining = "intake_budget_remaining"      // gauge: what the API last said is left
)
