package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/bulk"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// manyDead runs a stream holding n dead events, half of type "a" and
// half of type "b"; the handler counts what it handles once fixed.
func manyDead(t *testing.T, n int) (*intake.Stream, *console.Handler, *atomic.Bool, *atomic.Int64) {
	t.Helper()
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(2*n))
	var fixed atomic.Bool
	var handled atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		if !fixed.Load() {
			return errors.New("downstream said 500")
		}
		handled.Add(1)
		return nil
	}, intake.WithMaxAttempts(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Started()
	for i := range n {
		require.NoError(t, s.Put(ctx, event.Event{Source: "shop", ID: fmt.Sprint("e", i), Type: string(rune('a' + i%2))}))
	}
	require.Eventually(t, func() bool {
		recs, _ := dedupe.Select(ctx, s, dedupe.Filter{State: dedupe.Dead}, 0, func(dedupe.Record) bool { return true })
		return len(recs) == n
	}, 10*time.Second, time.Millisecond)
	h := console.New(s, console.WithLogger(quiet))
	t.Cleanup(h.Close)
	return s, h, &fixed, &handled
}

// The list links to a confirmation that counts every match (not the
// page); confirming starts a job whose page shows its progress; every
// match is replayed, the rest stay dead.
func TestBulkReplayFromThePages(t *testing.T) {
	const n = 300
	s, h, fixed, handled := manyDead(t, n)
	fixed.Store(true)
	list := do(h, "GET", "/events?state=dead&type=a", local, nil, nil)
	require.Equal(t, http.StatusOK, list.Code)
	assert.Contains(t, list.Body.String(), `href="bulk?action=replay&amp;state=dead&amp;type=a"`)

	confirm := do(h, "GET", "/bulk?action=replay&state=dead&type=a", local, nil, nil)
	require.Equal(t, http.StatusOK, confirm.Code, confirm.Body.String())
	assert.Contains(t, confirm.Body.String(), fmt.Sprintf("%d events match now", n/2), "all matches, not a page of 50")
	assert.Contains(t, confirm.Body.String(), `id="confirm"`)
	none := do(h, "GET", "/bulk?action=replay&state=dead&type=a&class=permanent", local, nil, nil)
	assert.Contains(t, none.Body.String(), "0 events match now", "their attempts ran out: transient, not permanent")
	assert.Equal(t, http.StatusBadRequest, do(h, "GET", "/bulk?action=replay&class=fatal", local, nil, nil).Code)

	noToken := do(h, "POST", "/bulk", local, url.Values{"action": {"replay"}, "type": {"a"}}, nil)
	assert.Equal(t, http.StatusForbidden, noToken.Code)
	tok := token(t, h)
	start := do(h, "POST", "/bulk", local, url.Values{"csrf": {tok}, "action": {"replay"}, "state": {"dead"}, "type": {"a"}}, nil)
	require.Equal(t, http.StatusSeeOther, start.Code, start.Body.String())
	loc := start.Header().Get("Location")
	require.True(t, strings.HasPrefix(loc, "bulk/"), loc)
	id := strings.TrimPrefix(loc, "bulk/")
	require.Eventually(t, func() bool {
		return strings.Contains(do(h, "GET", "/bulk/"+id, local, nil, nil).Body.String(), `id="job-state">done`)
	}, 10*time.Second, 5*time.Millisecond)
	page := do(h, "GET", "/bulk/"+id, local, nil, nil).Body.String()
	assert.Contains(t, page, fmt.Sprintf(`id="job-done">%d<`, n/2))
	assert.Contains(t, do(h, "GET", "/bulk", local, nil, nil).Body.String(), "bulk/"+id)
	require.Eventually(t, func() bool { return handled.Load() == n/2 }, 10*time.Second, time.Millisecond)
	recs, err := dedupe.Select(context.Background(), s, dedupe.Filter{State: dedupe.Dead}, 0, func(dedupe.Record) bool { return true })
	require.NoError(t, err)
	assert.Len(t, recs, n/2)
	for _, r := range recs {
		assert.Equal(t, "b", r.Event.Type)
	}
}

func TestBulkAPI(t *testing.T) {
	const n = 100
	_, h, fixed, handled := manyDead(t, n)
	fixed.Store(true)
	tok := token(t, h)
	post := func(body, csrf string) (int, map[string]any) {
		r := api(h, "POST", "/api/bulk", csrf, body)
		var v map[string]any
		_ = json.Unmarshal(r.Body.Bytes(), &v)
		return r.Code, v
	}
	code, _ := post(`{"action":"discard","filter":{"type":"b"}}`, "")
	assert.Equal(t, http.StatusForbidden, code, "no CSRF header")
	for _, bad := range []string{`{"action":"delete"}`, `{"action":"replay","filter":{"state":"queued"}}`, `{"action":"replay","filtre":{}}`, `not json`} {
		code, v := post(bad, tok)
		assert.Equal(t, http.StatusBadRequest, code, bad)
		assert.NotEmpty(t, v["error"], bad)
	}
	code, v := post(`{"action":"discard","filter":{"type":"b"}}`, tok)
	require.Equal(t, http.StatusAccepted, code, v)
	id, _ := v["id"].(string)
	require.NotEmpty(t, id)
	var p bulk.Progress
	require.Eventually(t, func() bool {
		r := do(h, "GET", "/api/bulk/"+id, local, nil, nil)
		return r.Code == http.StatusOK && json.Unmarshal(r.Body.Bytes(), &p) == nil && !p.Running()
	}, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, int64(n/2), p.Done)
	assert.Empty(t, p.Err)
	assert.Equal(t, http.StatusNotFound, do(h, "GET", "/api/bulk/nosuchjob", local, nil, nil).Code)
	assert.Zero(t, handled.Load(), "discarded, not handled")
}
