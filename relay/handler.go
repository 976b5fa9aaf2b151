package relay

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler serves a feed to long-polling consumers: GET with after, limit
// and wait, and a bearer token. Create it with [NewHandler].
type Handler struct {
	feed     Feed
	tokens   [][]byte
	maxWait  time.Duration
	maxLimit int
	log      *slog.Logger
}

// HandlerOption configures a [Handler].
type HandlerOption func(*Handler)

// WithMaxWait caps how long a request may be held (a wait of hours is
// cut to it). Defaults to 60 seconds.
func WithMaxWait(d time.Duration) HandlerOption {
	if d <= 0 {
		panic("relay: WithMaxWait must be positive")
	}
	return func(h *Handler) { h.maxWait = d }
}

// WithMaxLimit caps the items of one answer. Defaults to 1,000.
func WithMaxLimit(n int) HandlerOption {
	if n <= 0 {
		panic("relay: WithMaxLimit must be positive")
	}
	return func(h *Handler) { h.maxLimit = n }
}

// WithLogger sets the logger. Tokens are never logged. Defaults to
// [slog.Default].
func WithLogger(l *slog.Logger) HandlerOption { return func(h *Handler) { h.log = l } }

// DefaultLimit is the items of one answer when the request says none.
const DefaultLimit = 100

// NewHandler returns a handler of feed that accepts any of tokens
// (several at once while one is rotated out). It panics with no token or
// an empty one: a relay is public, and an open feed would hand every
// event to anyone.
func NewHandler(feed Feed, tokens []string, opts ...HandlerOption) *Handler {
	if len(tokens) == 0 {
		panic("relay: NewHandler without a token")
	}
	h := &Handler{feed: feed, maxWait: 60 * time.Second, maxLimit: 1000, log: slog.Default()}
	for _, t := range tokens {
		if t == "" {
			panic("relay: NewHandler with an empty token")
		}
		h.tokens = append(h.tokens, []byte(t))
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *Handler) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return false
	}
	match := 0
	for _, t := range h.tokens { // every token, so the time says nothing of which matched
		match |= subtle.ConstantTimeCompare([]byte(got), t)
	}
	return match == 1
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="intake relay"`)
		http.Error(w, "a valid Authorization: Bearer token is required", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	after := int64(-1) // no cursor: from the oldest item kept
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "after: a cursor from an earlier answer, or nothing", http.StatusBadRequest)
			return
		}
		after = n
	}
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			http.Error(w, "limit: a positive number of items", http.StatusBadRequest)
			return
		}
		limit = min(n, h.maxLimit)
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, err2 := strconv.ParseFloat(s, 64)
			if err2 != nil {
				http.Error(w, "wait: a duration such as 30s", http.StatusBadRequest)
				return
			}
			d = time.Duration(secs * float64(time.Second))
		}
		wait = min(max(d, 0), h.maxWait)
	}

	ctx := r.Context()
	floor, err := h.feed.Floor(ctx)
	if err != nil {
		h.fail(w, err)
		return
	}
	if after >= 0 && after < floor {
		http.Error(w, ErrGone.Error(), http.StatusGone)
		return
	}
	from := max(after, floor)
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	for {
		changed := h.feed.Changed() // before the read: nothing appended after it is missed
		items, err := h.feed.Read(ctx, from, limit)
		if err != nil {
			h.fail(w, err)
			return
		}
		if len(items) > 0 || timer == nil {
			h.answer(w, from, items)
			return
		}
		select {
		case <-changed:
		case <-timer:
			h.answer(w, from, nil)
			return
		case <-ctx.Done():
			return
		}
	}
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	h.log.Error("relay: feed unavailable", "err", err)
	w.Header().Set("Retry-After", "1")
	http.Error(w, "feed unavailable", http.StatusServiceUnavailable)
}

// answer writes {"cursor": …, "items": […]}; each item's payload is the
// raw JSON when it is JSON, else base64, and "event" is the whole event
// in its byte-exact binary encoding, base64.
func (h *Handler) answer(w http.ResponseWriter, from int64, items []Item) {
	cursor := from
	if len(items) > 0 {
		cursor = items[len(items)-1].Cursor
	}
	var b bytes.Buffer
	b.WriteString(`{"cursor":"`)
	b.WriteString(strconv.FormatInt(max(cursor, 0), 10))
	b.WriteString(`","items":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		writeItem(&b, it)
	}
	b.WriteString("]}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// wireItem is an item's readable fields.
type wireItem struct {
	Cursor   string            `json:"cursor"`
	ID       string            `json:"id"`
	Source   string            `json:"source"`
	Type     string            `json:"type,omitempty"`
	Via      string            `json:"via"`
	Time     *time.Time        `json:"time,omitempty"`
	Received *time.Time        `json:"received,omitempty"`
	Stored   time.Time         `json:"stored"`
	Headers  map[string]string `json:"headers,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Base64   string            `json:"payload_base64,omitempty"`
	Event    string            `json:"event"`
}

func writeItem(b *bytes.Buffer, it Item) {
	e := it.Event
	wi := wireItem{Cursor: strconv.FormatInt(it.Cursor, 10), ID: e.ID, Source: e.Source, Type: e.Type,
		Via: e.Via.String(), Stored: it.At}
	if !e.Time.IsZero() {
		wi.Time = &e.Time
	}
	if !e.Received.IsZero() {
		wi.Received = &e.Received
	}
	for k, v := range e.Meta {
		if name, ok := strings.CutPrefix(k, metaHeader); ok {
			if wi.Headers == nil {
				wi.Headers = map[string]string{}
			}
			wi.Headers[name] = v
			continue
		}
		if wi.Meta == nil {
			wi.Meta = map[string]string{}
		}
		wi.Meta[k] = v
	}
	rawJSON := len(e.Payload) > 0 && json.Valid(e.Payload)
	if !rawJSON && len(e.Payload) > 0 {
		wi.Base64 = base64.StdEncoding.EncodeToString(e.Payload)
	}
	enc, _ := e.MarshalBinary()
	wi.Event = base64.StdEncoding.EncodeToString(enc)
	head, _ := json.Marshal(wi)
	if !rawJSON {
		b.Write(head)
		return
	}
	// The payload goes in as it came, byte for byte (json.Marshal would
	// compact a RawMessage).
	b.Write(head[:len(head)-1])
	b.WriteString(`,"payload":`)
	b.Write(e.Payload)
	b.WriteByte('}')
}

// metaHeader is webhook.MetaHeader: the Meta key prefix of kept request
// headers. (Not imported, to keep this package free of the webhook one.)
const metaHeader = "header:"
