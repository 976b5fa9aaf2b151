package main

import (
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
	fs.Usage = func() { fmt.Fprint(fs.Output(), eventsUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args[1:], stdout, 1); err != nil {
		return err
	}
	if sub == "list" && fs.NArg() > 0 {
		return usagef("unexpected argument %q: list takes no key", fs.Arg(0))
	}
	if sub != "list" && fs.NArg() == 0 {
		return usagef("the event's key is required (see intake events list)")
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
