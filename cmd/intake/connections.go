package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/fleet"
)

const connectionsUsage = `Usage: intake connections list|show|add|update|pause|resume|resync|remove [flags] [ID]

  list     a poller fleet's connections: --state all (default), active or paused; --source, --after, --limit
  show     one connection, as JSON
  add      a connection: --source (required), --interval, --credential (a reference, never a secret), --cursor
  update   --interval or --credential; new credentials resume a connection the system paused (its token was refused)
  pause    stop polling: --by (who; required) and --reason; only a person's resume undoes it
  resume   poll a paused connection again, now
  resync   start over: from --cursor, or from the source's initial cursor (a full sync)
  remove   forget a connection

Where: --console URL (a running process's console, e.g. http://127.0.0.1:8080/intake/),
or the store itself: --db FILE (SQLite) or --postgres DSN (with --prefix if the app set one).
Flags may come before or after the ID.

`

// connManager is what the connections commands need: a fleet on the
// store itself, or a running process's console API.
type connManager interface {
	List(ctx context.Context, f fleet.Filter) ([]fleet.Connection, error)
	Get(ctx context.Context, id string) (fleet.Connection, error)
	Add(ctx context.Context, c fleet.Connection) error
	Update(ctx context.Context, id string, ch fleet.Change) (fleet.Connection, error)
	Pause(ctx context.Context, id, by, reason string) error
	Resume(ctx context.Context, id string) error
	Resync(ctx context.Context, id, cursor string) error
	Remove(ctx context.Context, id string) error
}

func connectionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, connectionsUsage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, connectionsUsage)
		return errHelp
	}
	sub := args[0]
	switch sub {
	case "list", "show", "add", "update", "pause", "resume", "resync", "remove":
	default:
		return usagef("unknown command %q: list, show, add, update, pause, resume, resync or remove (intake connections -h)", sub)
	}
	fs := flag.NewFlagSet("intake connections "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	consoleURL := fs.String("console", "", "a running process's console URL")
	db := fs.String("db", "", "an SQLite file")
	dsn := fs.String("postgres", "", "a PostgreSQL DSN")
	prefix := fs.String("prefix", "intake_", "--db, --postgres: the table prefix")
	state := fs.String("state", "all", "list: all, active or paused")
	source := fs.String("source", "", "list: only this source; add: the source that polls it")
	after := fs.String("after", "", "list: after this ID (the last of the previous page)")
	limit := fs.Int("limit", 100, "list: at most this many (1 to 1000)")
	interval := fs.String("interval", "", "add, update: the interval between polls, e.g. 5m")
	credential := fs.String("credential", "", "add, update: the credential's reference")
	cursor := fs.String("cursor", "", "add: the cursor to start from; resync: the cursor to start over from")
	by := fs.String("by", "", "pause: who pauses (a person's name)")
	reason := fs.String("reason", "", "pause: why")
	fs.Usage = func() { fmt.Fprint(fs.Output(), connectionsUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args[1:], stdout, 1<<20); err != nil {
		return err
	}
	id := ""
	if fs.NArg() > 0 { // flags after the ID
		id = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stdout, 0); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if sub == "list" && id != "" {
		return usagef("unexpected argument %q: list takes no ID", id)
	}
	if sub != "list" && strings.TrimSpace(id) == "" {
		return usagef("the connection's ID is required (see intake connections list)")
	}
	f := fleet.Filter{Source: *source, After: *after, Limit: *limit}
	switch *state {
	case "all":
	case "active", "paused":
		p := *state == "paused"
		f.Paused = &p
	default:
		return usagef("--state %q: all, active or paused", *state)
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("--limit %d: 1 to 1000", *limit)
	}
	var iv *time.Duration
	if set["interval"] {
		d, err := time.ParseDuration(*interval)
		if err != nil || d <= 0 {
			return usagef("--interval %q: a positive duration such as 5m", *interval)
		}
		iv = &d
	}
	switch {
	case sub == "add" && *source == "":
		return usagef("add needs --source: the source that polls the connection")
	case sub == "pause" && strings.TrimSpace(*by) == "":
		return usagef("pause needs --by: who pauses it (a person's pause is never undone by new credentials)")
	case sub == "update" && !set["interval"] && !set["credential"]:
		return usagef("update needs --interval or --credential")
	}
	if err := checkWhere(*consoleURL, *dsn, *db); err != nil {
		return err
	}
	var m connManager
	switch {
	case *consoleURL != "":
		m = &consoleConns{*newConsoleAPI(*consoleURL)}
	case *dsn != "":
		pg, err := postgres.Open(ctx, *dsn, postgres.WithPrefix(*prefix))
		if err != nil {
			return err
		}
		defer pg.Close()
		m = fleet.New("intake-cli", pg.Connections())
	case *db != "":
		sq, err := sqlite.Open(*db, sqlite.WithPrefix(*prefix))
		if err != nil {
			return err
		}
		defer sq.Close()
		m = fleet.New("intake-cli", sq.Connections())
	default:
		return usagef("say where: --console, --db or --postgres (intake connections -h)")
	}

	switch sub {
	case "list":
		conns, err := m.List(ctx, f)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSOURCE\tSTATE\tLAST POLL\tNEXT DUE\tERRORS\tEVENTS\tLAST ERROR")
		for _, c := range conns {
			st := "active"
			if c.Paused != "" {
				st = "paused by " + c.Paused
				if c.Reason != "" {
					st += ": " + c.Reason
				}
			}
			last, next := "never", "-"
			if !c.LastPoll.IsZero() {
				last = c.LastPoll.UTC().Format(time.RFC3339)
			}
			if c.Paused == "" {
				next = c.NextDue.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", c.ID, c.Source, st, last, next, c.Errors, c.Events, c.LastError)
		}
		return tw.Flush()
	case "show":
		c, err := m.Get(ctx, id)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	case "add":
		c := fleet.Connection{ID: id, Source: *source, Credential: *credential, Cursor: *cursor}
		if iv != nil {
			c.Interval = *iv
		}
		if err := m.Add(ctx, c); err != nil {
			return err
		}
	case "update":
		ch := fleet.Change{Interval: iv}
		if set["credential"] {
			ch.Credential = credential
		}
		if _, err := m.Update(ctx, id, ch); err != nil {
			return err
		}
	case "pause":
		if err := m.Pause(ctx, id, *by, *reason); err != nil {
			return err
		}
	case "resume":
		if err := m.Resume(ctx, id); err != nil {
			return err
		}
	case "resync":
		if err := m.Resync(ctx, id, *cursor); err != nil {
			return err
		}
	case "remove":
		if err := m.Remove(ctx, id); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s %s\n", sub, id)
	return nil
}

// consoleConns manages connections through a console's API.
type consoleConns struct{ c consoleAPI }

func (cc *consoleConns) List(ctx context.Context, f fleet.Filter) ([]fleet.Connection, error) {
	q := url.Values{"state": {"all"}, "limit": {strconv.Itoa(f.Limit)}}
	if f.Paused != nil {
		q.Set("state", map[bool]string{true: "paused", false: "active"}[*f.Paused])
	}
	if f.Source != "" {
		q.Set("source", f.Source)
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	var page struct{ Connections []fleet.Connection }
	err := cc.c.get(ctx, "/api/connections?"+q.Encode(), &page)
	return page.Connections, err
}

func (cc *consoleConns) Get(ctx context.Context, id string) (fleet.Connection, error) {
	var c fleet.Connection
	err := cc.c.get(ctx, "/api/connections/"+url.PathEscape(id), &c)
	return c, err
}

// send makes an API call that changes something: with the CSRF token.
func (cc *consoleConns) send(ctx context.Context, method, path string, body, out any) error {
	var tok struct{ Token string }
	if err := cc.c.get(ctx, "/api/token", &tok); err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, cc.c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(console.CSRFHeader, tok.Token)
	if out == nil {
		out = &map[string]any{}
	}
	return cc.c.do(req, out)
}

func (cc *consoleConns) Add(ctx context.Context, c fleet.Connection) error {
	in := console.ConnectionAdd{ID: c.ID, Source: c.Source, Credential: c.Credential, Cursor: c.Cursor}
	if c.Interval > 0 {
		in.Interval = c.Interval.String()
	}
	return cc.send(ctx, http.MethodPost, "/api/connections", in, nil)
}

func (cc *consoleConns) Update(ctx context.Context, id string, ch fleet.Change) (fleet.Connection, error) {
	in := console.ConnectionChange{Credential: ch.Credential}
	if ch.Interval != nil {
		s := ch.Interval.String()
		in.Interval = &s
	}
	var c fleet.Connection
	err := cc.send(ctx, http.MethodPatch, "/api/connections/"+url.PathEscape(id), in, &c)
	return c, err
}

func (cc *consoleConns) act(ctx context.Context, id, action string, in console.ConnectionAction) error {
	return cc.send(ctx, http.MethodPost, "/api/connections/"+url.PathEscape(id)+"/"+action, in, nil)
}

func (cc *consoleConns) Pause(ctx context.Context, id, by, reason string) error {
	return cc.act(ctx, id, "pause", console.ConnectionAction{By: by, Reason: reason})
}
func (cc *consoleConns) Resume(ctx context.Context, id string) error {
	return cc.act(ctx, id, "resume", console.ConnectionAction{})
}
func (cc *consoleConns) Resync(ctx context.Context, id, cursor string) error {
	return cc.act(ctx, id, "resync", console.ConnectionAction{Cursor: cursor})
}
func (cc *consoleConns) Remove(ctx context.Context, id string) error {
	return cc.act(ctx, id, "remove", console.ConnectionAction{})
}
