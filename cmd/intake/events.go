package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/bulk"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

const eventsUsage = `Usage: intake events list|show|replay|discard [flags] [KEY]

  list     the events held: --state dead (default), queued, in-flight or all; --source, --type, --after, --limit;
           --id finds an event by the id its provider sent, whatever its key; --tenant, a tenant's events
  show     one event, as JSON
  replay   put a dead event back in the queue, attempts reset
  discard  forget an event: a later arrival is a new event
  replay --all, discard --all
           every event matching --source, --type, --tenant, --error (text its last error contains), --class
           (of its last error: transient or permanent), --since and
           --until (when it died: RFC 3339, or a duration back from now such as 2h), as a job with progress;
           --state dead (default) or queued (discard only). Stopped, it is resumed by running it again.

Where: --console URL (a running process's console, e.g. http://127.0.0.1:8080/intake/),
or the backend itself: --db FILE (SQLite) or --postgres DSN.

`

// inspector is what the events commands need: a backend's Inspector, or
// a running process's console API.
type inspector interface {
	List(ctx context.Context, f dedupe.Filter, inFlight bool) ([]dedupe.Record, error)
	Get(ctx context.Context, key string) (dedupe.Record, error)
	Act(ctx context.Context, action, key string) error
	// Find returns the records of f's source and state whose provider id
	// is id and whose tenant is tenant ("" for any), as dedupe.Select.
	Find(ctx context.Context, f dedupe.Filter, id, tenant string) ([]dedupe.Record, error)
	// Bulk runs a job to its end, calling progress as it goes.
	Bulk(ctx context.Context, j bulk.Job, progress func(bulk.Progress)) (bulk.Progress, error)
}

func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, eventsUsage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, eventsUsage)
		return errHelp
	}
	sub := args[0]
	switch sub {
	case "list", "show", "replay", "discard":
	default:
		return usagef("unknown command %q: list, show, replay or discard (intake events -h)", sub)
	}
	fs := flag.NewFlagSet("intake events "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	consoleURL := fs.String("console", "", "a running process's console URL")
	db := fs.String("db", "", "an SQLite file")
	dsn := fs.String("postgres", "", "a PostgreSQL DSN")
	state := fs.String("state", "dead", "list: dead, queued, in-flight or all")
	source := fs.String("source", "", "list: only this source")
	typ := fs.String("type", "", "list: only this type")
	id := fs.String("id", "", "list: the event the provider sent with this id (a delivery id), whatever its key (a guarded scheme keys by the body's hash)")
	tenant := fs.String("tenant", "", "list: only this tenant's events (webhook.PerTenant)")
	after := fs.Int64("after", 0, "list: after this seq (the last of the previous page)")
	limit := fs.Int("limit", 50, "list: at most this many")
	all := fs.Bool("all", false, "replay, discard: every event matching the filters, as a job")
	errText := fs.String("error", "", "replay --all, discard --all: only events whose last error contains this text")
	class := fs.String("class", "", "replay --all, discard --all: only events whose last error is of this class: transient (attempts ran out) or permanent")
	since := fs.String("since", "", "replay --all, discard --all: only events that died at or after this time (RFC 3339, or a duration back from now)")
	until := fs.String("until", "", "replay --all, discard --all: only events that died before this time")
	fs.Usage = func() { fmt.Fprint(fs.Output(), eventsUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args[1:], stdout, 1); err != nil {
		return err
	}
	if sub == "list" && fs.NArg() > 0 {
		return usagef("unexpected argument %q: list takes no key", fs.Arg(0))
	}
	if *all && sub != "replay" && sub != "discard" {
		return usagef("--all is for replay and discard")
	}
	if *all && fs.NArg() > 0 {
		return usagef("unexpected argument %q: --all takes filters, not a key", fs.Arg(0))
	}
	if sub != "list" && !*all && fs.NArg() == 0 {
		return usagef("the event's key is required (see intake events list), or --all with filters")
	}
	f := dedupe.Filter{Source: *source, Type: *typ, After: *after, Limit: *limit}
	inFlight := false
	switch *state {
	case "dead":
		f.State = dedupe.Dead
	case "queued":
		f.State = dedupe.Queued
	case "in-flight":
		f.State, inFlight = dedupe.Queued, true
	case "all":
	default:
		return usagef("--state %q: dead, queued, in-flight or all", *state)
	}
	if *limit < 1 {
		return usagef("--limit %d: at least 1", *limit)
	}
	if *after < 0 {
		return usagef("--after must not be negative")
	}
	if err := checkWhere(*consoleURL, *dsn, *db); err != nil {
		return err
	}
	var in inspector
	switch {
	case *consoleURL != "":
		in = newConsoleAPI(*consoleURL)
	case *dsn != "":
		pg, err := postgres.Open(ctx, *dsn)
		if err != nil {
			return err
		}
		defer pg.Close()
		in = backendInspector{pg}
	case *db != "":
		sq, err := sqlite.Open(*db)
		if err != nil {
			return err
		}
		defer sq.Close()
		in = backendInspector{sq}
	default:
		return usagef("say where: --console, --db or --postgres (intake events -h)")
	}
	if *all {
		j := bulk.Job{Action: bulk.Action(sub), Filter: bulk.Filter{State: f.State, Source: *source, Type: *typ, Tenant: *tenant, Error: *errText, Class: *class}}
		if inFlight || *state == "all" {
			return usagef("--state %q: --all takes dead or queued events", *state)
		}
		now := time.Now()
		var err error
		if j.Filter.Since, err = when("--since", *since, now); err != nil {
			return err
		}
		if j.Filter.Until, err = when("--until", *until, now); err != nil {
			return err
		}
		if err := j.Validate(); err != nil {
			return usagef("%v", err)
		}
		return runBulk(ctx, in, j, stdout)
	}
	key := fs.Arg(0)
	switch sub {
	case "list":
		var recs []dedupe.Record
		var err error
		if *id != "" || *tenant != "" {
			recs, err = in.Find(ctx, f, *id, *tenant)
		} else {
			recs, err = in.List(ctx, f, inFlight)
		}
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tSTATE\tKEY\tTYPE\tATTEMPTS\tERROR")
		for _, r := range recs {
			st := r.State.String()
			if r.InFlight {
				st = "in-flight"
			}
			errText := ""
			if r.Failure != nil {
				errText = r.Failure.Err
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", r.Seq, st, r.Key, r.Event.Type, r.Attempts, errText)
		}
		return tw.Flush()
	case "show", "replay", "discard":
		if sub == "show" {
			r, err := in.Get(ctx, key)
			if err != nil {
				return err
			}
			r = hideHeaders(r)
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}
		if err := in.Act(ctx, sub, key); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", sub, key)
		return nil
	}
	fmt.Fprint(stderr, eventsUsage)
	return errUsage
}

// when reads --since or --until: a time (RFC 3339) or a duration back
// from now; "" is no bound.
func when(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s %q: a time such as 2026-12-07T10:00:00Z, or a duration back from now such as 2h", flag, s)
}

// runBulk runs a job and prints its progress each second and at its end.
func runBulk(ctx context.Context, in inspector, j bulk.Job, stdout io.Writer) error {
	fmt.Fprintf(stdout, "%s\n", j)
	last := time.Now()
	show := func(p bulk.Progress, final bool) {
		if !final && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(stdout, "%s: %d done, %d gone, %d matched of %d read\n", map[bool]string{true: "ended", false: "running"}[final], p.Done, p.Gone, p.Matched, p.Scanned)
	}
	p, err := in.Bulk(ctx, j, func(p bulk.Progress) { show(p, false) })
	show(p, true)
	if err != nil {
		return fmt.Errorf("%s stopped (run it again to go on): %w", j.Action, err)
	}
	return nil
}

// hideHeaders drops the request headers a webhook kept (its signature).
func hideHeaders(r dedupe.Record) dedupe.Record {
	meta := map[string]string{}
	for k, v := range r.Event.Meta {
		if !strings.HasPrefix(k, "header:") {
			meta[k] = v
		}
	}
	r.Event.Meta = meta
	return r
}

type backendInspector struct{ q dedupe.Queue }

func (b backendInspector) List(ctx context.Context, f dedupe.Filter, _ bool) ([]dedupe.Record, error) {
	return b.q.List(ctx, f)
}
func (b backendInspector) Find(ctx context.Context, f dedupe.Filter, id, tenant string) ([]dedupe.Record, error) {
	return dedupe.Select(ctx, b.q, f, 0, func(r dedupe.Record) bool {
		return (id == "" || r.Event.ID == id) && (tenant == "" || r.Event.Meta[event.MetaTenant] == tenant)
	})
}

func (b backendInspector) Get(ctx context.Context, key string) (dedupe.Record, error) {
	return b.q.Get(ctx, key)
}
func (b backendInspector) Bulk(ctx context.Context, j bulk.Job, progress func(bulk.Progress)) (bulk.Progress, error) {
	return bulk.Run(ctx, b.q, j, bulk.Options{Report: progress})
}

func (b backendInspector) Act(ctx context.Context, action, key string) error {
	if action == "replay" {
		return b.q.Replay(ctx, key)
	}
	return b.q.Discard(ctx, key)
}

// checkWhere checks the flags that say where the commands act: a
// console's URL, or (when neither a console nor a DSN is given) an
// SQLite file that exists.
func checkWhere(consoleURL, dsn, db string) error {
	if consoleURL != "" {
		return checkURL("--console", consoleURL)
	}
	if dsn == "" && db != "" {
		if _, err := os.Stat(db); err != nil {
			return usagef("--db %q: %v", db, err)
		}
		return checkDBFile("--db", db)
	}
	return nil
}

func newConsoleAPI(base string) *consoleAPI {
	return &consoleAPI{base: strings.TrimSuffix(base, "/"), client: &http.Client{Timeout: 30 * time.Second}}
}

// consoleAPI talks to a running process's console.
type consoleAPI struct {
	base   string
	client *http.Client
}

func (c *consoleAPI) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	return c.do(req, v)
}

func (c *consoleAPI) do(req *http.Request, v any) error {
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("console answered %s", resp.Status)
	}
	return json.Unmarshal(body, v)
}

func (c *consoleAPI) Find(ctx context.Context, f dedupe.Filter, id, tenant string) ([]dedupe.Record, error) {
	return c.list(ctx, f, false, id, tenant)
}

func (c *consoleAPI) List(ctx context.Context, f dedupe.Filter, inFlight bool) ([]dedupe.Record, error) {
	return c.list(ctx, f, inFlight, "", "")
}

func (c *consoleAPI) list(ctx context.Context, f dedupe.Filter, inFlight bool, id, tenant string) ([]dedupe.Record, error) {
	q := url.Values{}
	if id != "" {
		q.Set("id", id)
	}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	switch {
	case inFlight:
		q.Set("state", "in-flight")
	case f.State == dedupe.Dead:
		q.Set("state", "dead")
	case f.State == dedupe.Queued:
		q.Set("state", "queued")
	default:
		q.Set("state", "all")
	}
	if f.Source != "" {
		q.Set("source", f.Source)
	}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.After > 0 {
		q.Set("after", strconv.FormatInt(f.After, 10))
	}
	q.Set("limit", strconv.Itoa(f.Limit))
	var page struct{ Records []dedupe.Record }
	err := c.get(ctx, "/api/events?"+q.Encode(), &page)
	return page.Records, err
}

func (c *consoleAPI) Get(ctx context.Context, key string) (dedupe.Record, error) {
	var r dedupe.Record
	err := c.get(ctx, "/api/events/"+url.PathEscape(key), &r)
	return r, err
}

// Bulk starts the job in the console's process (or joins it there) and
// follows its progress until it ends.
func (c *consoleAPI) Bulk(ctx context.Context, j bulk.Job, progress func(bulk.Progress)) (bulk.Progress, error) {
	var tok struct{ Token string }
	if err := c.get(ctx, "/api/token", &tok); err != nil {
		return bulk.Progress{}, err
	}
	body, err := json.Marshal(j)
	if err != nil {
		return bulk.Progress{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/bulk", bytes.NewReader(body))
	if err != nil {
		return bulk.Progress{}, err
	}
	req.Header.Set(console.CSRFHeader, tok.Token)
	req.Header.Set("Content-Type", "application/json")
	var p bulk.Progress
	if err := c.do(req, &p); err != nil {
		return p, err
	}
	for p.Running() {
		progress(p)
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if err := c.get(ctx, "/api/bulk/"+url.PathEscape(p.ID), &p); err != nil {
			return p, err
		}
	}
	if p.Err != "" {
		return p, errors.New(p.Err)
	}
	return p, nil
}

func (c *consoleAPI) Act(ctx context.Context, action, key string) error {
	var tok struct{ Token string }
	if err := c.get(ctx, "/api/token", &tok); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/events/"+url.PathEscape(key)+"/"+action, nil)
	if err != nil {
		return err
	}
	req.Header.Set(console.CSRFHeader, tok.Token)
	var done map[string]string
	return c.do(req, &done)
}
