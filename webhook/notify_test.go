package webhook_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// notifyCase is one request to a notification-only handler and what it
// must get: a status, a body, and whether it triggers the poller.
type notifyCase struct {
	name    string
	method  string
	target  string
	header  http.Header
	body    string
	status  int
	reply   string
	trigger bool
}

func runNotify(t *testing.T, v *webhook.Scheme, cases []notifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var triggered atomic.Int32
			h := webhook.New("files", v, webhook.WithTrigger(func() { triggered.Add(1) }), webhook.WithLogger(quiet))
			req := httptest.NewRequest(tc.method, tc.target, bytes.NewReader([]byte(tc.body)))
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req) // the handler is not in a running stream: it stores nothing anyway
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if tc.reply != "" {
				if got := w.Body.String(); got != tc.reply {
					t.Errorf("body %q, want %q", got, tc.reply)
				}
				if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if w.Header().Get("X-Content-Type-Options") != "nosniff" {
					t.Error("a challenge echoed without nosniff")
				}
			}
			if got := triggered.Load() == 1; got != tc.trigger {
				t.Errorf("triggered %d times, want %v", triggered.Load(), tc.trigger)
			}
		})
	}
}

// Dropbox's scheme against the vector of hapi-dropbox-webhooks' tests
// (app secret "the_secret"), its GET challenge, and a byte changed.
func TestDropbox(t *testing.T) {
	const body = `{"delta": {"users": [12345]}}`
	sig := http.Header{"X-Dropbox-Signature": {"0a8c16b085420b960dc78664279fe09e936a2a01b1f91064869d9e77dfd64529"}}
	changed := `{"delta": {"users": [12346]}}`
	runNotify(t, webhook.Dropbox("the_secret"), []notifyCase{
		{"notification", http.MethodPost, "/dropbox", sig, body, http.StatusOK, "", true},
		{"a byte changed", http.MethodPost, "/dropbox", sig, changed, http.StatusUnauthorized, "", false},
		{"another secret", http.MethodPost, "/dropbox", webhook.SignDropbox("not the secret", []byte(body)), body, http.StatusUnauthorized, "", false},
		{"unsigned", http.MethodPost, "/dropbox", nil, body, http.StatusUnauthorized, "", false},
		{"signature not hex", http.MethodPost, "/dropbox", http.Header{"X-Dropbox-Signature": {"zz"}}, body, http.StatusUnauthorized, "", false},
		{"challenge", http.MethodGet, "/dropbox?challenge=the_challenge", nil, "", http.StatusOK, "the_challenge", false},
		{"challenge with HTML", http.MethodGet, "/dropbox?challenge=%3Cscript%3E", nil, "", http.StatusOK, "<script>", false},
		{"GET without a challenge", http.MethodGet, "/dropbox", nil, "", http.StatusBadRequest, "", false},
		{"signed by SignDropbox", http.MethodPost, "/dropbox", webhook.SignDropbox("the_secret", []byte(changed)), changed, http.StatusOK, "", true},
	})
}

// Google's push channels, with the headers of Drive's documented example
// notification: the token must match; sync is answered and triggers
// nothing.
func TestGoogleChannel(t *testing.T) {
	example := func(token, state string) http.Header {
		return http.Header{
			"X-Goog-Channel-Id":         {"4ba78bf0-6a47-11e2-bcfd-0800200c9a66"},
			"X-Goog-Channel-Token":      {token},
			"X-Goog-Channel-Expiration": {"Tue, 19 Nov 2013 01:13:52 GMT"},
			"X-Goog-Resource-Id":        {"ret08u3rv24htgh289g"},
			"X-Goog-Resource-Uri":       {"https://www.googleapis.com/drive/v3/files/ret08u3rv24htgh289g"},
			"X-Goog-Resource-State":     {state},
			"X-Goog-Changed":            {"content,properties"},
			"X-Goog-Message-Number":     {"10"},
		}
	}
	noChannel := example("398348u3tu83ut8uu38", "update")
	noChannel.Del("X-Goog-Channel-Id")
	runNotify(t, webhook.GoogleChannel("398348u3tu83ut8uu38"), []notifyCase{
		{"update", http.MethodPost, "/drive", example("398348u3tu83ut8uu38", "update"), "", http.StatusOK, "", true},
		{"sync", http.MethodPost, "/drive", example("398348u3tu83ut8uu38", "sync"), "", http.StatusOK, "", false},
		{"a byte changed", http.MethodPost, "/drive", example("398348u3tu83ut8uu39", "update"), "", http.StatusUnauthorized, "", false},
		{"no token", http.MethodPost, "/drive", example("", "update"), "", http.StatusUnauthorized, "", false},
		{"no channel", http.MethodPost, "/drive", noChannel, "", http.StatusUnauthorized, "", false},
		{"GET", http.MethodGet, "/drive", nil, "", http.StatusMethodNotAllowed, "", false},
	})
}

// Box: a vector computed with openssl (the body's bytes, then the
// timestamp's, under the key), either key's header enough, ten minutes
// of tolerance, the event stored with the body's id.
func TestBox(t *testing.T) {
	const body = `{"type":"webhook_event","id":"eb0e2fa2-9f6b-4d0f-a6b5-3a0c51c0b6b7","created_at":"2026-12-04T01:58:00-08:00","trigger":"FILE.UPLOADED","source":{"id":"1234567","type":"file"}}`
	const ts = "2026-12-04T10:00:00Z"
	sent, _ := time.Parse(time.RFC3339, ts)
	headers := func(primary, secondary string) http.Header {
		h := http.Header{"Box-Delivery-Timestamp": {ts}, "Box-Delivery-Id": {"d-1"}}
		if primary != "" {
			h.Set("BOX-SIGNATURE-PRIMARY", primary)
		}
		if secondary != "" {
			h.Set("BOX-SIGNATURE-SECONDARY", secondary)
		}
		return h
	}
	const vector = "0iFDif5pHBBTh7AeYq2HkBjgx2TAK922lBJc36stkeQ=" // openssl dgst -sha256 -hmac SamplePrimaryKey -binary | base64
	for _, tc := range []struct {
		name    string
		scheme  *webhook.Scheme
		header  http.Header
		body    string
		at      time.Time
		wantErr bool
	}{
		{"primary", webhook.Box("SamplePrimaryKey", "SampleSecondaryKey"), headers(vector, "bad"), body, sent.Add(time.Minute), false},
		{"secondary alone valid", webhook.Box("rotated", "SamplePrimaryKey"), headers("bad", vector), body, sent, false},
		{"a byte changed", webhook.Box("SamplePrimaryKey", ""), headers(vector, ""), body[:len(body)-2] + "x}", sent, true},
		{"the key of the other header", webhook.Box("other", "SamplePrimaryKey"), headers(vector, ""), body, sent, true},
		{"eleven minutes old", webhook.Box("SamplePrimaryKey", ""), headers(vector, ""), body, sent.Add(11 * time.Minute), true},
		{"no signature", webhook.Box("SamplePrimaryKey", ""), headers("", ""), body, sent, true},
		{"signed by SignBox", webhook.Box("p", "s"), webhook.SignBox("p", "s", []byte(body), sent), body, sent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := tc.scheme.WithClock(func() time.Time { return tc.at }).Verify(tc.header, []byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Verify: %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (e.ID != "eb0e2fa2-9f6b-4d0f-a6b5-3a0c51c0b6b7" || e.Type != "FILE.UPLOADED" || e.Time.IsZero()) {
				t.Errorf("event %+v", e)
			}
		})
	}
	if err := webhook.Box("", "").Err(); err == nil {
		t.Error("Box with no key is usable")
	}
}

func TestNotifyOnlyNeedsATrigger(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with a notification-only scheme and no trigger did not panic")
		}
	}()
	webhook.New("files", webhook.Dropbox("secret"))
}

// A burst of 1,000 notifications triggers at most one poll per minimum
// gap (and one more): the poller coalesces. Dropbox and Google alike.
func TestNotificationBurstCoalesces(t *testing.T) {
	dropboxBody := []byte(`{"list_folder": {"accounts": ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}, "delta": {"users": [12345]}}`)
	for _, tc := range []struct {
		name   string
		scheme *webhook.Scheme
		body   []byte
		header http.Header
	}{
		{"dropbox", webhook.Dropbox("the_secret"), dropboxBody, webhook.SignDropbox("the_secret", dropboxBody)},
		{"google", webhook.GoogleChannel("398348u3tu83ut8uu38"), nil, http.Header{
			"X-Goog-Channel-Id": {"4ba78bf0"}, "X-Goog-Channel-Token": {"398348u3tu83ut8uu38"}, "X-Goog-Resource-State": {"update"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { burst(t, tc.scheme, tc.body, tc.header) })
	}
}

func burst(t *testing.T, scheme *webhook.Scheme, body []byte, header http.Header) {
	const gap = 100 * time.Millisecond
	var polls, last atomic.Int64 // fetches, and the start of the last one
	p := poller.New("files", poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
		polls.Add(1)
		last.Store(time.Now().UnixNano())
		return poller.Page{}, nil
	}), poller.Every(time.Hour), poller.WithMinGap(gap), poller.WithLogger(quiet))
	h := webhook.New("files", scheme, webhook.WithTrigger(p.Trigger), webhook.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, event.SinkFunc(func(context.Context, event.Event) error { return nil })) }()
	for polls.Load() == 0 { // the poll at start
		time.Sleep(time.Millisecond)
	}
	before := polls.Load()
	srv := httptest.NewServer(h)
	defer srv.Close()
	start := time.Now()
	for range 1000 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header = header.Clone()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		time.Sleep(time.Millisecond) // a burst over about a second: several gaps
	}
	time.Sleep(2 * gap) // the last trigger's poll
	cancel()
	<-done
	// From the first notification to the last poll it caused.
	took := time.Unix(0, last.Load()).Sub(start)
	n := polls.Load() - before
	limit := int64(took/gap) + 1
	t.Logf("1,000 notifications in %v: %d polls (at most %d)", took.Round(time.Millisecond), n, limit)
	if n > limit || n == 0 {
		t.Errorf("%d polls for 1,000 notifications in %v, want 1 to %d", n, took, limit)
	}
}

// Graph's lifecycle notifications: "missed" (Graph dropped changes) is
// stored with its type and triggers the reconciliation poll through
// OnAccepted; "reauthorizationRequired" is stored with its type for a
// subscription of its own to act on, and triggers nothing.
func TestGraphLifecycleNotifications(t *testing.T) {
	var triggered atomic.Int32
	var stored []event.Event
	h := webhook.New("graph", webhook.MicrosoftGraph("secretClientState"), webhook.WithLogger(quiet),
		webhook.OnAccepted(func(e event.Event) {
			if e.Type == "missed" {
				triggered.Add(1)
			}
		}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	go func() {
		_ = h.Run(ctx, event.SinkFunc(func(_ context.Context, e event.Event) error {
			mu.Lock()
			stored = append(stored, e)
			mu.Unlock()
			return nil
		}))
	}()
	send := func(lifecycle string) int {
		body := `{"value":[{"subscriptionId":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","subscriptionExpirationDateTime":"2026-12-05T02:00:00Z","tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95","clientState":"secretClientState","lifecycleEvent":"` + lifecycle + `"}]}`
		for {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/graph/lifecycle", strings.NewReader(body)))
			if w.Code != http.StatusServiceUnavailable { // not running yet
				return w.Code
			}
			time.Sleep(time.Millisecond)
		}
	}
	if code := send("reauthorizationRequired"); code != http.StatusAccepted {
		t.Fatalf("reauthorizationRequired: %d", code)
	}
	if code := send("missed"); code != http.StatusAccepted {
		t.Fatalf("missed: %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 2 || stored[0].Type != "reauthorizationRequired" || stored[1].Type != "missed" {
		t.Fatalf("stored %+v", stored)
	}
	if triggered.Load() != 1 {
		t.Errorf("triggered %d times, want once (for missed)", triggered.Load())
	}
}

// WithTrigger on a scheme that stores its events is a mistake to see at
// start: OnAccepted is the way to poll after a stored event.
func TestTriggerOnlyForNotificationSchemes(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with GitHub and WithTrigger did not panic")
		}
	}()
	webhook.New("gh", webhook.GitHub("secret"), webhook.WithTrigger(func() {}))
}
