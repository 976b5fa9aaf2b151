package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

func sendCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("intake send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheme := fs.String("scheme", "", "signature scheme: "+schemeNames()+" (svix is standard)")
	secret := fs.String("secret", "", "the webhook secret, as the provider gives it (see the schemes below), or env:VAR or file:PATH to read it from there")
	target := fs.String("url", "", "where to send it, e.g. http://127.0.0.1:8080/hooks/github")
	file := fs.String("file", "", "the body, a file (- for stdin); default: the provider's shape of a small event")
	id := fs.String("id", "", "the event or delivery id; default: one made from the time")
	typ := fs.String("type", "test.event", "the event type")
	handshake := fs.Bool("handshake", false, "send the provider's endpoint check instead of an event ("+handshakeNames()+")")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, "Usage: intake send --scheme S --secret K --url U [--file F] [--id ID] [--type T] [--handshake]\n\n"+
			"Signs a webhook as the provider would and sends it; prints the status, the id the\n"+
			"receiver stores (read back from the signed request with the scheme's own verifier),\n"+
			"and the answer. Exits 0 on a 2xx, 1 otherwise, 2 for a command line to fix.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(w, "\nSchemes and their --secret:\n")
		for _, p := range providers {
			fmt.Fprintf(w, "  %-10s %s\n", p.name, p.secret)
		}
	}
	if err := parseFlags(fs, args, stdout, 0); err != nil {
		return err
	}
	if *scheme == "" || *secret == "" || *target == "" {
		return usagef("--scheme, --secret and --url are required (intake send -h)")
	}
	if err := checkURL("--url", *target); err != nil {
		return err
	}
	sec, err := readSecret(*secret)
	if err != nil {
		return usagef("--secret: %v", err)
	}
	s, err := newSigner(*scheme, sec)
	if err != nil {
		return err
	}
	if *handshake && *file != "" {
		return usagef("--handshake sends the provider's own check: no --file")
	}
	now := time.Now()
	if *id == "" {
		*id = fmt.Sprintf("evt_%d", now.UnixNano())
	}
	m := &message{method: http.MethodPost, url: *target, header: http.Header{}, id: *id, typ: *typ, now: now}
	if *handshake {
		challenge := "intake-" + strconv.FormatInt(now.UnixNano(), 36)
		if err := s.handshake(m, challenge); err != nil {
			return err
		}
		status, answer, err := post(ctx, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s handshake\n%s\n", status, answer)
		if !strings.HasPrefix(status, "2") {
			return fmt.Errorf("answered %s", status)
		}
		return nil
	}
	switch *file {
	case "":
		m.body = s.defaultBody(*id, *typ, now)
	case "-":
		if m.body, err = io.ReadAll(stdin); err != nil {
			return err
		}
	default:
		if m.body, err = os.ReadFile(*file); err != nil {
			return usagef("--file: %v", err)
		}
	}
	e, err := s.sign(m)
	if err != nil {
		return fmt.Errorf("the receiver would refuse this request: %w", err)
	}
	if idGiven(fs) && e.ID != *id {
		fmt.Fprintf(stderr, "intake send: --id %q is not the id: the %s scheme reads it from the request as %q\n", *id, s.p.name, e.ID)
	}
	status, answer, err := post(ctx, m)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n", status, e.ID)
	if answer != "" {
		fmt.Fprintln(stdout, answer)
	}
	if !strings.HasPrefix(status, "2") {
		return fmt.Errorf("answered %s", status)
	}
	return nil
}

// idGiven reports whether --id was on the command line.
func idGiven(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "id" })
	return given
}

// post sends m and returns the status and the start of the answer.
func post(ctx context.Context, m *message) (status, answer string, err error) {
	var body io.Reader
	if m.body != nil {
		body = bytes.NewReader(m.body)
	}
	req, err := http.NewRequestWithContext(ctx, m.method, m.url, body)
	if err != nil {
		return "", "", err
	}
	req.Header = m.header
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.Status, strings.TrimRight(string(b), "\n"), nil
}

// checkURL checks that a flag's value is an absolute http or https URL.
func checkURL(flagName, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("%s %q: want an absolute http:// or https:// URL", flagName, raw)
	}
	return nil
}
