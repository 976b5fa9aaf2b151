package promrecorder_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/metric/promrecorder"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

// TestExportedValues runs a stream and a webhook handler with the recorder
// and reads the values back from the registry.
func TestExportedValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := promrecorder.New(reg)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := intake.New(intake.WithMetrics(rec), intake.WithLogger(quiet))
	h := webhook.New("github", webhook.GitHub(secret), webhook.WithMetrics(rec), webhook.WithLogger(quiet))
	s.Add(h)
	deliveries := s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	send := func(id, key string) int {
		body := []byte(`{"delivery":"` + id + `"}`)
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header = webhook.SignGitHub(key, id, "push", body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	requests := 1
	for send("warm", secret) == http.StatusServiceUnavailable {
		requests++
		time.Sleep(time.Millisecond)
	}
	(<-deliveries).Ack()
	for _, id := range []string{"a", "b", "c"} {
		send(id, secret)
		(<-deliveries).Ack()
	}
	send("a", secret)         // duplicate
	send("x", "wrong secret") // rejected
	cancel()
	<-done

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) float64 {
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if matches(m, labels) {
					switch f.GetType() {
					case dto.MetricType_COUNTER:
						return m.GetCounter().GetValue()
					case dto.MetricType_GAUGE:
						return m.GetGauge().GetValue()
					case dto.MetricType_HISTOGRAM:
						return float64(m.GetHistogram().GetSampleCount())
					}
				}
			}
		}
		t.Errorf("no %s%v", name, labels)
		return -1
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metric.Accepted, map[string]string{"source": "github"}, 4},
		{metric.Committed, map[string]string{"source": "github"}, 4},
		{metric.Duplicate, map[string]string{"source": "github", "reason": "done"}, 1},
		{metric.Received, map[string]string{"source": "github", "reason": "signature-mismatch"}, 1},
		{metric.Received, map[string]string{"source": "github", "reason": "accepted"}, 4},
		{metric.AckLatency, map[string]string{"source": "github"}, float64(requests + 5)},
		{metric.QueueDepth, map[string]string{}, 0},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Issue #34, item 9: a counter that never has a reason carries no reason
// label, the stream-wide queue depth no source label, and every help
// text says what the metric counts rather than repeating its name.
func TestLabelsAndHelp(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := promrecorder.New(reg)
	r.Count(metric.Accepted, "github", "", 1)
	r.Count(metric.Rejected, "github", "store", 1)
	r.Gauge(metric.QueueDepth, "", 3)
	r.Observe(metric.AckLatency, "github", time.Millisecond)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		metric.Accepted:   {"source"},
		metric.Rejected:   {"reason", "source"},
		metric.QueueDepth: nil,
		metric.AckLatency: {"source"},
	}
	for _, f := range families {
		var names []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
		if w, ok := want[f.GetName()]; ok && strings.Join(names, ",") != strings.Join(w, ",") {
			t.Errorf("%s has labels %v, want %v", f.GetName(), names, w)
		}
		repeated := "intake: " + strings.ReplaceAll(strings.TrimPrefix(f.GetName(), "intake_"), "_", " ")
		if f.GetHelp() == repeated || len(f.GetHelp()) < 20 {
			t.Errorf("%s: help %q repeats the name", f.GetName(), f.GetHelp())
		}
	}
}
