package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/intakehq/intake/fleet"
)

// WithFleet adds the connections of a poller fleet to the console: a
// page that lists them (state, last poll, last error, next due, error
// streak, events) with pause, resume and resync buttons, and the API
// under /api/connections that the intake CLI uses to list, add, update,
// pause, resume, resync and remove them. Any replica's console manages
// the whole fleet: the connections are in the shared store. Defaults to
// none: no connections page.
func WithFleet(f *fleet.Fleet) Option { return func(h *Handler) { h.fleet = f } }

func (h *Handler) routeFleet() {
	if h.fleet == nil {
		return
	}
	h.mux.HandleFunc("GET /connections", h.connections)
	h.mux.HandleFunc("POST /connections/{id}/{action}", h.connAct)
	h.mux.HandleFunc("GET /api/connections", h.apiConnections)
	h.mux.HandleFunc("POST /api/connections", h.apiConnAdd)
	h.mux.HandleFunc("GET /api/connections/{id}", h.apiConnection)
	h.mux.HandleFunc("PATCH /api/connections/{id}", h.apiConnUpdate)
	h.mux.HandleFunc("POST /api/connections/{id}/{action}", h.apiConnAct)
}

// connStatus is the HTTP status of a fleet error: the caller's (400,
// 404, 409) or the store's (503).
func connStatus(err error) int {
	switch {
	case errors.Is(err, fleet.ErrInvalid), errors.Is(err, errBadBody):
		return http.StatusBadRequest
	case errors.Is(err, fleet.ErrNotFound), errors.Is(err, errUnknownAction):
		return http.StatusNotFound
	case errors.Is(err, fleet.ErrExists):
		return http.StatusConflict
	}
	var bf badFilter
	if errors.As(err, &bf) {
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

var errBadBody = errors.New("console: bad request body")

func (h *Handler) connFailedJSON(w http.ResponseWriter, err error) {
	code := connStatus(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", outageRetry)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// connFilter reads ?source=&state=active|paused|all&after=&limit=.
func connFilter(r *http.Request) (fleet.Filter, string, error) {
	q := r.URL.Query()
	f := fleet.Filter{Source: q.Get("source"), After: q.Get("after"), Limit: 100}
	state := q.Get("state")
	switch state {
	case "", "all":
		state = "all"
	case "active", "paused":
		p := state == "paused"
		f.Paused = &p
	default:
		return f, state, badFilter(fmt.Sprintf("state %q: active, paused or all", state))
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return f, state, badFilter(fmt.Sprintf("limit %q: 1 to 1000", l))
		}
		f.Limit = n
	}
	return f, state, nil
}

type connData struct {
	Conns               []fleet.Connection
	State, Source, Next string
	Done, DoneID        string
	CSRF                string
	Now                 time.Time
}

func (h *Handler) connections(w http.ResponseWriter, r *http.Request) {
	f, state, err := connFilter(r)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	conns, err := h.fleet.List(r.Context(), f)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	d := connData{Conns: conns, State: state, Source: f.Source, CSRF: h.csrf, Now: time.Now(),
		Done: r.URL.Query().Get("done"), DoneID: r.URL.Query().Get("id")}
	if len(conns) == f.Limit {
		d.Next = conns[len(conns)-1].ID
	}
	h.render(w, "connections.html", d)
}

// connDo runs an action on a connection: pause (by whom, why), resume,
// resync (from a cursor; "" starts over), remove.
func (h *Handler) connDo(ctx context.Context, action, id, by, reason, cursor string) error {
	switch action {
	case "pause":
		return h.fleet.Pause(ctx, id, by, reason)
	case "resume":
		return h.fleet.Resume(ctx, id)
	case "resync":
		return h.fleet.Resync(ctx, id, cursor)
	case "remove":
		return h.fleet.Remove(ctx, id)
	}
	return fmt.Errorf("%w %q: pause, resume, resync or remove", errUnknownAction, action)
}

func (h *Handler) connAct(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r.PostFormValue("csrf")) {
		http.Error(w, "missing or wrong CSRF token: use the page's button", http.StatusForbidden)
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	by := r.PostFormValue("by")
	if by == "" {
		by = "console"
	}
	if err := h.connDo(r.Context(), action, id, by, r.PostFormValue("reason"), r.PostFormValue("cursor")); err != nil {
		if connStatus(err) == http.StatusServiceUnavailable {
			h.failed(w, r, err)
		} else {
			http.Error(w, err.Error(), connStatus(err))
		}
		return
	}
	h.log.Info("console: connection "+action, "connection", id)
	w.Header().Set("Location", "../../connections?done="+action+"&id="+url.QueryEscape(id))
	w.WriteHeader(http.StatusSeeOther)
}

func (h *Handler) apiConnections(w http.ResponseWriter, r *http.Request) {
	f, _, err := connFilter(r)
	if err != nil {
		h.connFailedJSON(w, err)
		return
	}
	conns, err := h.fleet.List(r.Context(), f)
	if err != nil {
		h.connFailedJSON(w, err)
		return
	}
	next := ""
	if len(conns) == f.Limit {
		next = conns[len(conns)-1].ID
	}
	if conns == nil {
		conns = []fleet.Connection{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": conns, "next": next})
}

func (h *Handler) apiConnection(w http.ResponseWriter, r *http.Request) {
	c, err := h.fleet.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.connFailedJSON(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// readBody decodes a small JSON body into v, refusing unknown fields.
func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", errBadBody, err)
	}
	return nil
}

func (h *Handler) apiCSRF(w http.ResponseWriter, r *http.Request) bool {
	if h.validCSRF(r.Header.Get(CSRFHeader)) {
		return true
	}
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong " + CSRFHeader + " header: GET /api/token"})
	return false
}

// ConnectionAdd is the body of POST /api/connections.
type ConnectionAdd struct {
	ID         string `json:"id"`
	Source     string `json:"source"`
	Interval   string `json:"interval,omitempty"` // a Go duration; "" for the fleet's
	Credential string `json:"credential,omitempty"`
	Cursor     string `json:"cursor,omitempty"`
}

// ConnectionChange is the body of PATCH /api/connections/{id}.
type ConnectionChange struct {
	Interval   *string `json:"interval,omitempty"`
	Credential *string `json:"credential,omitempty"`
}

// ConnectionAction is the body of POST /api/connections/{id}/{action}.
type ConnectionAction struct {
	By     string `json:"by,omitempty"`     // pause: who (required)
	Reason string `json:"reason,omitempty"` // pause: why
	Cursor string `json:"cursor,omitempty"` // resync: from where ("" starts over)
}

func duration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %s %q: a duration such as 5m", fleet.ErrInvalid, field, s)
	}
	return d, nil
}

func (h *Handler) apiConnAdd(w http.ResponseWriter, r *http.Request) {
	if !h.apiCSRF(w, r) {
		return
	}
	var in ConnectionAdd
	if err := readBody(r, &in); err != nil {
		h.connFailedJSON(w, err)
		return
	}
	iv, err := duration("interval", in.Interval)
	if err == nil {
		err = h.fleet.Add(r.Context(), fleet.Connection{ID: in.ID, Source: in.Source, Interval: iv, Credential: in.Credential, Cursor: in.Cursor})
	}
	if err != nil {
		h.connFailedJSON(w, err)
		return
	}
	h.log.Info("console: connection added", "connection", in.ID, "source", in.Source)
	c, err := h.fleet.Get(r.Context(), in.ID)
	if err != nil {
		h.connFailedJSON(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func (h *Handler) apiConnUpdate(w http.ResponseWriter, r *http.Request) {
	if !h.apiCSRF(w, r) {
		return
	}
	var in ConnectionChange
	if err := readBody(r, &in); err != nil {
		h.connFailedJSON(w, err)
		return
	}
	var ch fleet.Change
	if in.Interval != nil {
		iv, err := duration("interval", *in.Interval)
		if err != nil {
			h.connFailedJSON(w, err)
			return
		}
		ch.Interval = &iv
	}
	ch.Credential = in.Credential
	c, err := h.fleet.Update(r.Context(), r.PathValue("id"), ch)
	if err != nil {
		h.connFailedJSON(w, err)
		return
	}
	h.log.Info("console: connection updated", "connection", c.ID)
	writeJSON(w, http.StatusOK, c)
}

func (h *Handler) apiConnAct(w http.ResponseWriter, r *http.Request) {
	if !h.apiCSRF(w, r) {
		return
	}
	var in ConnectionAction
	if err := readBody(r, &in); err != nil {
		h.connFailedJSON(w, err)
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if err := h.connDo(r.Context(), action, id, in.By, in.Reason, in.Cursor); err != nil {
		h.connFailedJSON(w, err)
		return
	}
	h.log.Info("console: connection "+action, "connection", id)
	writeJSON(w, http.StatusOK, map[string]string{"done": action, "id": id})
}
