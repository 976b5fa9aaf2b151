package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/bulk"
	"github.com/intakehq/intake/dedupe"
)

// Bulk actions: replay or discard every event that matches a filter, as a
// job that runs in the background (package bulk). The list page links to
// a confirmation that counts the matches; the confirmation starts the job
// and shows its progress.

func (h *Handler) routeBulk() {
	h.mux.HandleFunc("GET /bulk", h.bulkConfirm)
	h.mux.HandleFunc("POST /bulk", h.bulkStart)
	h.mux.HandleFunc("GET /bulk/{id}", h.bulkShow)
	h.mux.HandleFunc("GET /api/bulk", h.apiBulkList)
	h.mux.HandleFunc("POST /api/bulk", h.apiBulkStart)
	h.mux.HandleFunc("GET /api/bulk/{id}", h.apiBulkShow)
}

// Close stops the bulk jobs the console runs and waits for them (each
// stops at its next event; start it again to go on).
func (h *Handler) Close() { h.jobs.Close() }

// bulkJob reads a job from a form or a query: action, state, source,
// type, tenant, error, since and until (RFC 3339).
func bulkJob(v url.Values) (bulk.Job, error) {
	j := bulk.Job{Action: bulk.Action(v.Get("action")), Filter: bulk.Filter{
		Source: v.Get("source"), Type: v.Get("type"), Tenant: v.Get("tenant"), Error: v.Get("error"), Class: v.Get("class"),
	}}
	switch v.Get("state") {
	case "", "dead":
		j.Filter.State = dedupe.Dead
	case "queued":
		j.Filter.State = dedupe.Queued
	default:
		return j, badFilter("state: a bulk action takes dead or queued events")
	}
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"since", &j.Filter.Since}, {"until", &j.Filter.Until}} {
		s := strings.TrimSpace(v.Get(b.name))
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return j, badFilter(b.name + ": a time such as 2026-12-07T10:00:00Z")
		}
		*b.t = t
	}
	if err := j.Validate(); err != nil {
		return j, badFilter(err.Error())
	}
	return j, nil
}

// count counts the events j matches now, reading page by page.
func (h *Handler) count(ctx context.Context, j bulk.Job) (int, error) {
	f := dedupe.Filter{State: j.Filter.State, Source: j.Filter.Source, Type: j.Filter.Type, Limit: 1000}
	n := 0
	for {
		page, err := h.s.List(ctx, f)
		if err != nil {
			return n, err
		}
		for _, r := range page {
			if j.Filter.Match(r) {
				n++
			}
		}
		if len(page) < f.Limit {
			return n, nil
		}
		f.After = page[len(page)-1].Seq
	}
}

type bulkData struct {
	Job      bulk.Job
	Form     url.Values // the job as form fields
	N        int        // matching now
	CSRF     string
	Health   intake.Health
	Progress bulk.Progress
	Jobs     []bulk.Progress
}

// bulkConfirm counts what a job would act on and asks to confirm it.
func (h *Handler) bulkConfirm(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("action") == "" {
		h.render(w, "bulk.html", bulkData{Jobs: h.jobs.All(), Health: h.s.Health()})
		return
	}
	j, err := bulkJob(r.URL.Query())
	if err != nil {
		h.failed(w, r, err)
		return
	}
	n, err := h.count(r.Context(), j)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	h.render(w, "bulk-confirm.html", bulkData{Job: j, Form: r.URL.Query(), N: n, CSRF: h.csrf, Health: h.s.Health()})
}

func (h *Handler) bulkStart(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r.PostFormValue("csrf")) {
		http.Error(w, "missing or wrong CSRF token: use the page's button", http.StatusForbidden)
		return
	}
	j, err := bulkJob(r.PostForm)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	p, err := h.jobs.Start(j)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	h.log.Info("console: bulk job", "id", p.ID, "job", j.String())
	w.Header().Set("Location", "bulk/"+p.ID)
	w.WriteHeader(http.StatusSeeOther)
}

func (h *Handler) bulkShow(w http.ResponseWriter, r *http.Request) {
	p, ok := h.jobs.Get(r.PathValue("id"))
	if !ok {
		http.Error(w, "no such bulk job in this process (jobs are kept until 32 more have ended, and not across restarts)", http.StatusNotFound)
		return
	}
	h.render(w, "bulk-job.html", bulkData{Progress: p, Health: h.s.Health()})
}

func (h *Handler) apiBulkList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"jobs": h.jobs.All()})
}

// apiBulkStart starts the job its JSON body (a bulk.Job) describes and
// answers 202 with its progress (joined, when the same job runs).
func (h *Handler) apiBulkStart(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r.Header.Get(CSRFHeader)) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong " + CSRFHeader + " header: GET /api/token"})
		return
	}
	var j bulk.Job
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the body is a job: {\"action\": \"replay\", \"filter\": {…}}: " + err.Error()})
		return
	}
	p, err := h.jobs.Start(j)
	if errors.Is(err, bulk.ErrInvalid) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		h.failedJSON(w, err)
		return
	}
	h.log.Info("console: bulk job", "id", p.ID, "job", j.String())
	writeJSON(w, http.StatusAccepted, p)
}

func (h *Handler) apiBulkShow(w http.ResponseWriter, r *http.Request) {
	p, ok := h.jobs.Get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such bulk job in this process"})
		return
	}
	writeJSON(w, http.StatusOK, p)
}
