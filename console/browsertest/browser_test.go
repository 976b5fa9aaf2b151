package browsertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/proto"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// chromium finds the browser, or skips (fails under CI=true) saying how
// to install it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found; install it with `apt-get install -y chromium`"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestConsoleInABrowser loads the overview, follows the dead count to the
// dead event the test made, opens it, clicks Replay, and sees the event
// handled and gone from the dead list. It saves a screenshot of the
// overview: to $INTAKE_SCREENSHOT_DIR when set (CI keeps it as an
// artifact; the README's is docs/console.png), else to a temporary file,
// and says where.
func TestConsoleInABrowser(t *testing.T) {
	browser := chromium(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := intake.New(intake.WithLogger(quiet))
	var fixed atomic.Bool
	var handled atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		if e.ID == "in_1042" && !fixed.Load() {
			return errors.New(`customer "cus_9" not found`)
		}
		handled.Add(1)
		return nil
	}, intake.WithName("billing"), intake.WithMaxAttempts(3), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	mux := http.NewServeMux()
	mux.Handle("/intake/", http.StripPrefix("/intake", console.New(s, console.WithLogger(quiet))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i, id := range []string{"in_1040", "in_1041", "in_1042", "in_1043"} {
		e := event.Event{Source: "stripe", ID: id, Type: "invoice.paid", Payload: []byte(`{"id":"` + id + `","amount":4200}`)}
		if i%2 == 1 {
			e.Source, e.Type = "github", "push"
		}
		if err := intaketest.Put(ctx, s, e); err != nil {
			t.Fatal(err)
		}
	}
	for {
		d, _ := s.List(ctx, dedupe.Filter{State: dedupe.Dead})
		if len(d) == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("browser: %v", r)
		}
	}()
	u := launcher.New().Bin(browser).NoSandbox(true).Headless(true).Leakless(false).MustLaunch()
	b := rod.New().ControlURL(u).Timeout(60 * time.Second).MustConnect()
	defer b.MustClose()
	page := b.MustPage(srv.URL+"/intake/").MustSetViewport(1200, 700, 1, false)
	page.MustElement("#dead-link")
	overview := page.MustElement("main").MustText()
	shot, err := page.Screenshot(true, &proto.PageCaptureScreenshot{Format: proto.PageCaptureScreenshotFormatPng})
	if err != nil {
		t.Fatal(err)
	}
	// A click that navigates: wait for the new page before reading it, or
	// a query can land on the document being replaced ("Inspected target
	// navigated or closed").
	follow := func(selector string) {
		wait := page.MustWaitNavigation()
		page.MustElement(selector).MustClick()
		wait()
	}
	follow("#dead-link")
	follow("a.event-link")
	page.MustElement("#replay")
	state := page.MustElement("#state").MustText()
	errText := page.MustElement("#error").MustText()
	dir := os.Getenv("INTAKE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "console.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the overview: %s", path)
	if !strings.Contains(overview, "1 dead") || !strings.Contains(overview, "stripe") {
		t.Fatalf("overview says:\n%s", overview)
	}
	if state != "dead" || !strings.Contains(errText, `customer "cus_9" not found`) {
		t.Fatalf("event page: state %q, error %q", state, errText)
	}

	before := handled.Load()
	fixed.Store(true)
	follow("#replay")
	doneText := page.MustElement("#done").MustText()
	if !strings.Contains(doneText, "replay") {
		t.Fatalf("after the click: %q", doneText)
	}
	deadline := time.Now().Add(5 * time.Second)
	for handled.Load() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if handled.Load() == before {
		t.Fatal("the replayed event was not handled")
	}
	deadList := page.MustNavigate(srv.URL + "/intake/events?state=dead").MustElement("table").MustText()
	if strings.Contains(deadList, "in_1042") {
		t.Fatalf("still listed as dead after the replay:\n%s", deadList)
	}
}

// TestBulkReplayInABrowser filters the dead list by type, follows
// "replay all matching" to the confirmation, which counts every match
// (more than a page), confirms, and watches the job's page until it says
// done with every match acted on; the matches are handled once, the rest
// stay dead.
func TestBulkReplayInABrowser(t *testing.T) {
	browser := chromium(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const n = 2000
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(2*n))
	var fixed atomic.Bool
	var handled atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		if !fixed.Load() {
			return errors.New("ledger said 503")
		}
		handled.Add(1)
		return nil
	}, intake.WithName("ledger"), intake.WithMaxAttempts(1))
	h := console.New(s, console.WithLogger(quiet))
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle("/intake/", http.StripPrefix("/intake", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := range n {
		typ := "invoice.paid"
		if i%2 == 1 {
			typ = "invoice.created"
		}
		if err := intaketest.Put(ctx, s, event.Event{Source: "stripe", ID: fmt.Sprint("in_", i), Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	countDead := func() int {
		recs, _ := dedupe.Select(ctx, s, dedupe.Filter{State: dedupe.Dead}, 0, func(dedupe.Record) bool { return true })
		return len(recs)
	}
	for deadline := time.Now().Add(10 * time.Second); countDead() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead of %d", countDead(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fixed.Store(true)

	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("browser: %v", r)
		}
	}()
	u := launcher.New().Bin(browser).NoSandbox(true).Headless(true).Leakless(false).MustLaunch()
	b := rod.New().ControlURL(u).Timeout(60 * time.Second).MustConnect()
	defer b.MustClose()
	page := b.MustPage(srv.URL + "/intake/events?state=dead&type=invoice.paid")
	follow := func(selector string) {
		wait := page.MustWaitNavigation()
		page.MustElement(selector).MustClick()
		wait()
	}
	follow("#replay-all")
	matching := page.MustElement("#matching").MustText()
	if !strings.Contains(matching, fmt.Sprintf("%d events match now", n/2)) {
		t.Fatalf("confirmation says: %q", matching)
	}
	follow("#confirm")
	jobURL := page.MustInfo().URL
	if !strings.Contains(jobURL, "/intake/bulk/") {
		t.Fatalf("after confirming, the browser is at %s", jobURL)
	}
	var state, acted string
	for deadline := time.Now().Add(20 * time.Second); ; {
		page.MustNavigate(jobURL).MustWaitLoad()
		state, acted = page.MustElement("#job-state").MustText(), page.MustElement("#job-done").MustText()
		if state == "done" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if state != "done" || acted != fmt.Sprint(n/2) {
		t.Fatalf("job page: state %q, acted on %q; want done, %d", state, acted, n/2)
	}
	for deadline := time.Now().Add(10 * time.Second); handled.Load() != n/2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := handled.Load(); got != n/2 {
		t.Fatalf("%d handled, want %d", got, n/2)
	}
	if d := countDead(); d != n/2 {
		t.Fatalf("%d still dead, want %d (the other type)", d, n/2)
	}
}
