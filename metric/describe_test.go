package metric_test

import (
	"testing"

	"github.com/intakehq/intake/metric"
)

// Every name intake reports is described, for exporters.
func TestEveryNameDescribed(t *testing.T) {
	for _, name := range []string{metric.Accepted, metric.Duplicate, metric.Rejected, metric.Delivered, metric.Acked,
		metric.Nacked, metric.DeadLetter, metric.Committed, metric.Dropped, metric.QueueDepth, metric.Processing,
		metric.SourceError, metric.Received, metric.AckLatency, metric.Polls, metric.EmptyPolls, metric.NotModified,
		metric.PollErrors, metric.Backoff, metric.Fetched, metric.Coalesced, metric.FetchFailed,
		metric.FleetPaused, metric.BudgetRequests, metric.BudgetWait, metric.BudgetLimited, metric.BudgetRemaining} {
		if i, ok := metric.Describe(name); !ok || len(i.Help) < 20 {
			t.Errorf("%s: %+v, %v", name, i, ok)
		}
	}
	if got := metric.Labels(metric.QueueDepth, false); len(got) != 0 {
		t.Errorf("queue depth labels %v", got)
	}
	if got := metric.Labels("app_custom_total", true); len(got) != 2 {
		t.Errorf("an unknown counter's labels %v", got)
	}
}
