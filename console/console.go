// Package console is an admin page for a stream, to mount in your own
// server: an overview of each source (accepted, duplicates, rejected by
// reason, last success and last error, a rate chart), the queue against
// its capacity, lists of queued, in-flight and dead events with paging and
// filters, each event with its payload, attempts and error, and buttons to
// replay or discard it, and bulk actions: replay or discard every event a
// filter matches, as a background job with a progress page (package
// bulk). JSON endpoints under /api serve the same data and actions to the
// intake CLI.
//
//	mux.Handle("/intake/", http.StripPrefix("/intake", console.New(stream)))
//
// Safe by default: it answers only loopback clients unless given an
// authorization function ([WithAuthorize]), every action needs a CSRF
// token (a form field the pages carry, or the X-Intake-CSRF header the
// API needs), payloads are escaped, and the request headers a webhook
// kept (its signature among them) are never shown. Pages are rendered
// from html/template, embedded, and work with JavaScript off.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/bulk"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fleet"
)

//go:embed templates/*.html
var files embed.FS

// Handler serves the console. Create it with [New].
type Handler struct {
	s         *intake.Stream
	authorize func(*http.Request) bool
	csrf      string
	log       *slog.Logger
	mux       *http.ServeMux
	tmpl      *template.Template
	pageSize  int
	fleet     *fleet.Fleet
	jobs      *bulk.Jobs
}

// Option configures a [Handler].
type Option func(*Handler)

// WithAuthorize sets the function that decides who may use the console
// (your session check). Without it, only loopback clients may, and only
// when the request does not say it came through a proxy (Forwarded,
// X-Forwarded-For, X-Real-IP, X-Forwarded-Host): behind a reverse proxy on
// the same host every client is loopback, so there the console needs
// WithAuthorize. Defaults to that loopback-only rule.
func WithAuthorize(fn func(*http.Request) bool) Option { return func(h *Handler) { h.authorize = fn } }

// WithLogger sets the logger. Defaults to the stream's
// ([intake.WithLogger]).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// CSRFHeader is the header an API action must carry, with the token a
// GET of /api/token returns (a browser cannot send it cross-site).
const CSRFHeader = "X-Intake-CSRF"

// New returns the console of s.
func New(s *intake.Stream, opts ...Option) *Handler {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := &Handler{s: s, csrf: hex.EncodeToString(b[:]), log: s.Logger(), mux: http.NewServeMux(), pageSize: 50}
	for _, o := range opts {
		o(h)
	}
	h.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"ago":     ago,
		"keyPath": url.PathEscape,
		"spark":   spark,
		"json":    prettyPayload,
		"query":   query,
		"list":    func(s ...string) []string { return s },
		"when": func(r dedupe.Record) time.Time { // when it died, else when it arrived
			if r.Failure != nil && !r.Failure.Last.IsZero() {
				return r.Failure.Last.Local()
			}
			return r.Event.Received.Local()
		},
		"bulkQuery": func(action, state, source, typ, tenant string) template.URL {
			v := url.Values{"action": {action}, "state": {state}}
			for k, x := range map[string]string{"source": source, "type": typ, "tenant": tenant} {
				if x != "" {
					v.Set(k, x)
				}
			}
			return template.URL(v.Encode())
		},
	}).ParseFS(files, "templates/*.html"))
	h.mux.HandleFunc("GET /{$}", h.overview)
	h.mux.HandleFunc("GET /events", h.list)
	h.mux.HandleFunc("GET /events/{key}", h.event)
	h.mux.HandleFunc("POST /events/{key}/{action}", h.act)
	h.mux.HandleFunc("GET /api/token", h.apiToken)
	h.mux.HandleFunc("GET /api/overview", h.apiOverview)
	h.mux.HandleFunc("GET /api/events", h.apiList)
	h.mux.HandleFunc("GET /api/events/{key}", h.apiEvent)
	h.mux.HandleFunc("POST /api/events/{key}/{action}", h.apiAct)
	h.routeFleet()
	h.jobs = bulk.NewJobs(s, bulk.Options{})
	h.routeBulk()
	return h
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.authorize == nil && proxied(r) {
		http.Error(w, "the intake console refuses requests that came through a proxy (they carry Forwarded, X-Forwarded-For or X-Real-IP) unless configured with console.WithAuthorize: behind a proxy every client would look like loopback", http.StatusForbidden)
		return
	}
	if !h.allowed(r) {
		http.Error(w, "the intake console answers loopback clients only, unless configured with console.WithAuthorize", http.StatusForbidden)
		return
	}
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'")
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// proxied reports a request that says it was forwarded by a proxy: its
// loopback address is the proxy's, not the client's.
func proxied(r *http.Request) bool {
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Host"} {
		if _, ok := r.Header[k]; ok {
			return true
		}
	}
	return false
}

func (h *Handler) allowed(r *http.Request) bool {
	if h.authorize != nil {
		return h.authorize(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *Handler) validCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(h.csrf)) == 1
}

// overviewData is what the overview shows.
type overviewData struct {
	Health  intake.Health
	Sources []sourceRow
	Dead    int  // dead now, counted up to deadCounted
	More    bool // more than deadCounted are dead
	CSRF    string
	Fleet   bool // WithFleet: a link to the connections
	Paused  int  // connections paused, counted up to a hundred (-1: unknown)
}

type sourceRow struct {
	intake.SourceStats
	LastSuccess, LastError time.Time
	Err                    string
	Turned                 []reasonCount // rejected by the stream or the source, by reason
}

type reasonCount struct {
	Reason string
	N      int64
}

func (h *Handler) overviewData(ctx context.Context) overviewData {
	d := overviewData{Health: h.s.Health(), CSRF: h.csrf}
	stats := map[string]intake.SourceStats{}
	for _, st := range h.s.Stats() {
		stats[st.Name] = st
	}
	seen := map[string]bool{}
	add := func(name string, sh *intake.SourceHealth) {
		seen[name] = true
		row := sourceRow{SourceStats: stats[name]}
		row.Name = name
		rejected := map[string]int64{}
		for k, v := range row.Rejected {
			rejected[k] += v
		}
		if sh != nil {
			row.LastSuccess, row.LastError, row.Err = sh.LastSuccess, sh.LastError, sh.Err
			for k, v := range sh.Rejected {
				rejected[k] += v
			}
		}
		for k, v := range rejected {
			row.Turned = append(row.Turned, reasonCount{k, v})
		}
		sort.Slice(row.Turned, func(i, j int) bool { return row.Turned[i].Reason < row.Turned[j].Reason })
		d.Sources = append(d.Sources, row)
	}
	for i := range d.Health.Sources { // one per name: the stream merges a webhook and a poller of one source
		add(d.Health.Sources[i].Name, &d.Health.Sources[i])
	}
	for name := range stats {
		if !seen[name] {
			add(name, nil)
		}
	}
	sort.Slice(d.Sources, func(i, j int) bool { return d.Sources[i].Name < d.Sources[j].Name })
	// Counted up to deadCounted, so that the overview stays one indexed
	// read.
	d.Dead = -1
	if dead, err := h.s.List(ctx, dedupe.Filter{State: dedupe.Dead, Limit: deadCounted + 1}); err == nil {
		d.Dead, d.More = min(len(dead), deadCounted), len(dead) > deadCounted
	}
	if h.fleet != nil {
		d.Fleet, d.Paused = true, -1
		paused := true
		if conns, err := h.fleet.List(ctx, fleet.Filter{Paused: &paused, Limit: 100}); err == nil {
			d.Paused = len(conns)
		}
	}
	return d
}

// deadCounted is how many dead events the overview counts at most.
const deadCounted = 1000

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	h.render(w, "overview.html", h.overviewData(r.Context()))
}

// listData is one page of a list.
type listData struct {
	State, Source, Type string
	ID                  string // the provider's id looked for (dedupe.Find), or ""
	Tenant              string // the tenant looked for (event.MetaTenant), or ""
	Records             []dedupe.Record
	Next                int64 // the After of the next page, 0 for none
	CSRF                string
	Health              intake.Health
}

func (h *Handler) filter(r *http.Request) (dedupe.Filter, string, error) {
	q := r.URL.Query()
	f := dedupe.Filter{Source: q.Get("source"), Type: q.Get("type"), Limit: h.pageSize}
	state := q.Get("state")
	switch state {
	case "", "dead":
		state, f.State = "dead", dedupe.Dead
	case "queued", "in-flight":
		f.State = dedupe.Queued
	case "all":
		f.State = 0
	default:
		return f, state, badFilter("state: dead, queued, in-flight or all")
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return f, state, badFilter("after: a seq from the previous page")
		}
		f.After = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return f, state, badFilter("limit: a whole number from 1 (at most 1000 a page)")
		}
		f.Limit = min(n, 1000)
	}
	return f, state, nil
}

// badFilter is a query the caller must fix: a 400. Any other error of a
// page is the store's: a 503 (see outage).
type badFilter string

func (e badFilter) Error() string { return string(e) }

// outageRetry is the Retry-After of a 503: about two health checks.
const outageRetry = "5"

// failed answers a page's error: 400 for a bad filter, 404 for what is
// not there, and 503 with Retry-After for the store's failure, as an HTML
// page that keeps the console's navigation.
func (h *Handler) failed(w http.ResponseWriter, r *http.Request, err error) {
	code := status(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", outageRetry)
		base := "" // the links are relative to the page's URL
		if r.PathValue("key") != "" {
			base = "../"
		}
		h.renderStatus(w, code, "outage.html", map[string]any{"Err": err.Error(), "Health": h.s.Health(), "Base": base})
		return
	}
	http.Error(w, err.Error(), code)
}

func (h *Handler) page(r *http.Request) (listData, error) {
	f, state, err := h.filter(r)
	if err != nil {
		return listData{}, err
	}
	id, tenant := r.URL.Query().Get("id"), r.URL.Query().Get("tenant")
	var recs []dedupe.Record
	if id != "" || tenant != "" {
		// By the provider's id (whatever the key: a guarded scheme keys
		// by the body's hash) or the tenant, which no backend indexes:
		// the matches, up to a thousand, on one page.
		var err error
		recs, err = dedupe.Select(r.Context(), h.s, f, 1000, func(rec dedupe.Record) bool {
			return (id == "" || rec.Event.ID == id) && (tenant == "" || rec.Event.Meta[event.MetaTenant] == tenant)
		})
		if err != nil {
			return listData{}, err
		}
	} else {
		var err error
		if recs, err = h.s.List(r.Context(), f); err != nil {
			return listData{}, err
		}
	}
	d := listData{State: state, Source: f.Source, Type: f.Type, ID: id, Tenant: tenant, CSRF: h.csrf, Health: h.s.Health()}
	if id == "" && tenant == "" && len(recs) == f.Limit {
		d.Next = recs[len(recs)-1].Seq
	}
	for _, rec := range recs {
		if state == "in-flight" && !rec.InFlight {
			continue
		}
		d.Records = append(d.Records, shown(rec))
	}
	return d, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	d, err := h.page(r)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	h.render(w, "list.html", d)
}

type eventData struct {
	Record dedupe.Record
	Meta   [][2]string
	CSRF   string
	Done   string // what was just done, from the redirect
	Health intake.Health
}

func (h *Handler) event(w http.ResponseWriter, r *http.Request) {
	rec, err := h.s.Get(r.Context(), r.PathValue("key"))
	if errors.Is(err, dedupe.ErrNotFound) {
		d := map[string]any{"Key": r.PathValue("key"), "Done": r.URL.Query().Get("done"), "Health": h.s.Health()}
		if at, until, ok, err := h.s.Committed(r.Context(), r.PathValue("key")); err == nil && ok {
			d["At"], d["Until"], d["Subs"] = at, until, strings.Join(h.s.SubscriptionNames(), ", ")
		}
		h.render(w, "gone.html", d)
		return
	}
	if err != nil {
		h.failed(w, r, err)
		return
	}
	rec = shown(rec)
	d := eventData{Record: rec, CSRF: h.csrf, Done: r.URL.Query().Get("done"), Health: h.s.Health()}
	for k, v := range rec.Event.Meta {
		d.Meta = append(d.Meta, [2]string{k, v})
	}
	sort.Slice(d.Meta, func(i, j int) bool { return d.Meta[i][0] < d.Meta[j][0] })
	h.render(w, "event.html", d)
}

// errUnknownAction is an action the console does not have: a request to
// fix (404), not an outage.
var errUnknownAction = errors.New("console: unknown action")

func (h *Handler) do(ctx context.Context, action, key string) error {
	switch action {
	case "replay":
		return h.s.Replay(ctx, key)
	case "discard":
		return h.s.Discard(ctx, key)
	}
	return fmt.Errorf("%w %q: replay or discard", errUnknownAction, action)
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r.PostFormValue("csrf")) {
		http.Error(w, "missing or wrong CSRF token: use the page's button", http.StatusForbidden)
		return
	}
	key, action := r.PathValue("key"), r.PathValue("action")
	if action == "discard" && r.PostFormValue("confirm") != "yes" {
		// Destructive: asked once more, on a page of its own.
		h.render(w, "confirm.html", map[string]any{"Key": key, "CSRF": h.csrf, "Health": h.s.Health()})
		return
	}
	if err := h.do(r.Context(), action, key); err != nil {
		h.failed(w, r, err)
		return
	}
	h.log.Info("console: "+action, "key", key)
	// A relative Location, as is: the browser resolves it against the URL
	// it asked for, prefix included (http.Redirect would resolve it
	// against the path StripPrefix left).
	w.Header().Set("Location", "../"+url.PathEscape(key)+"?done="+action)
	w.WriteHeader(http.StatusSeeOther)
}

// status is the HTTP status of an error of the console: the caller's
// (400, 404) or ours (503).
func status(err error) int {
	var bf badFilter
	switch {
	case errors.As(err, &bf):
		return http.StatusBadRequest
	case errors.Is(err, dedupe.ErrNotFound) || errors.Is(err, errUnknownAction):
		return http.StatusNotFound
	}
	return http.StatusServiceUnavailable
}

// shown is a record as the console shows it: without the request headers
// a webhook kept (its signature among them).
func shown(r dedupe.Record) dedupe.Record {
	if len(r.Event.Meta) == 0 {
		return r
	}
	meta := make(map[string]string, len(r.Event.Meta))
	for k, v := range r.Event.Meta {
		if !strings.HasPrefix(k, "header:") {
			meta[k] = v
		}
	}
	r.Event.Meta = meta
	return r
}

func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	h.renderStatus(w, http.StatusOK, name, data)
}

func (h *Handler) renderStatus(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("console: render", "template", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// API.

func (h *Handler) apiToken(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"token": h.csrf, "header": CSRFHeader})
}

func (h *Handler) apiOverview(w http.ResponseWriter, r *http.Request) {
	d := h.overviewData(r.Context())
	ov := struct {
		Health  intake.Health        `json:"health"`
		Sources []intake.SourceStats `json:"sources"`
		Dead    int                  `json:"dead"`                // dead now, counted up to 1,000 (-1: unknown)
		More    bool                 `json:"dead_more,omitempty"` // more than 1,000 are dead
	}{d.Health, h.s.Stats(), d.Dead, d.More}
	writeJSON(w, http.StatusOK, ov)
}

func (h *Handler) apiList(w http.ResponseWriter, r *http.Request) {
	d, err := h.page(r)
	if err != nil {
		h.failedJSON(w, err)
		return
	}
	if d.Records == nil {
		d.Records = []dedupe.Record{} // a list, empty, for JSON clients
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": d.Records, "next": d.Next})
}

// failedJSON is failed for the API: {"error": …} with the same statuses.
func (h *Handler) failedJSON(w http.ResponseWriter, err error) {
	code := status(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", outageRetry)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func (h *Handler) apiEvent(w http.ResponseWriter, r *http.Request) {
	rec, err := h.s.Get(r.Context(), r.PathValue("key"))
	if errors.Is(err, dedupe.ErrNotFound) {
		if at, until, ok, cerr := h.s.Committed(r.Context(), r.PathValue("key")); cerr == nil && ok {
			// Not held: handled, its key kept. Still a 404 (no record), saying so.
			writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error(), "handled": map[string]time.Time{"committed": at, "kept_until": until}})
			return
		}
	}
	if err != nil {
		h.failedJSON(w, err)
		return
	}
	writeJSON(w, http.StatusOK, shown(rec))
}

func (h *Handler) apiAct(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r.Header.Get(CSRFHeader)) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong " + CSRFHeader + " header: GET /api/token"})
		return
	}
	key, action := r.PathValue("key"), r.PathValue("action")
	if err := h.do(r.Context(), action, key); err != nil {
		writeJSON(w, status(err), map[string]string{"error": err.Error()})
		return
	}
	h.log.Info("console: "+action, "key", key)
	writeJSON(w, http.StatusOK, map[string]string{"done": action, "key": key})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Template helpers.

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	if d < time.Second {
		return "just now"
	}
	return d.String() + " ago"
}

// prettyPayload is the payload indented when it is JSON, as text when it
// is valid UTF-8, else a note of its size; html/template escapes it.
func prettyPayload(p []byte) string {
	var b bytes.Buffer
	if json.Valid(p) && json.Indent(&b, p, "", "  ") == nil {
		return b.String()
	}
	if s := string(p); strings.ToValidUTF8(s, "\uFFFD") == s {
		return s
	}
	return fmt.Sprintf("(%d bytes, not text)", len(p))
}

// spark draws counts as an SVG polyline, 240×40.
func spark(counts []int64) template.HTML {
	var peak int64 = 1
	for _, c := range counts {
		peak = max(peak, c)
	}
	var pts strings.Builder
	for i, c := range counts {
		x := float64(i) * 240 / float64(max(len(counts)-1, 1))
		y := 38 - float64(c)*36/float64(peak)
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	return template.HTML(`<svg class="spark" width="240" height="40" viewBox="0 0 240 40" role="img" aria-label="accepted per 10 s, last 10 minutes"><polyline fill="none" stroke="#17a2b8" stroke-width="1.5" points="` +
		template.HTMLEscapeString(pts.String()) + `"/></svg>`)
}

// query builds a list URL's query, escaped by url.Values: a template.URL,
// so that html/template keeps its '=' and '&' (a plain string after '?'
// would be escaped into one value, and the link would lose its filters).
func query(state, source, typ string, after int64) template.URL {
	v := url.Values{}
	v.Set("state", state)
	if source != "" {
		v.Set("source", source)
	}
	if typ != "" {
		v.Set("type", typ)
	}
	if after > 0 {
		v.Set("after", strconv.FormatInt(after, 10))
	}
	return template.URL(v.Encode())
}
