package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/intakehq/intake/webhook"
)

func sendCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("intake send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheme := fs.String("scheme", "", "signature scheme: stripe, github, shopify, slack, standard (Standard Webhooks, Svix)")
	secret := fs.String("secret", "", "the webhook secret, as the provider gives it (whsec_… for standard)")
	url := fs.String("url", "", "where to send it, e.g. http://127.0.0.1:8080/hooks/github")
	file := fs.String("file", "", "the body, a file (- for stdin); default: a small JSON event")
	id := fs.String("id", "", "the event or delivery id; default: one made from the time")
	typ := fs.String("type", "test.event", "the event type, where the scheme carries one in a header")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: intake send --scheme S --secret K --url U [--file F] [--id ID] [--type T]\n\n"+
			"Signs a webhook as the provider would and sends it; prints the status and the answer.\n"+
			"Exits 0 on a 2xx, 1 otherwise.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *scheme == "" || *secret == "" || *url == "" {
		fs.Usage()
		fmt.Fprintln(stderr, "\nintake send: --scheme, --secret and --url are required")
		return errUsage
	}
	if *id == "" {
		*id = fmt.Sprintf("evt_%d", time.Now().UnixNano())
	}
	body := []byte(fmt.Sprintf(`{"id":%q,"type":%q,"created":%d,"data":{"object":{"test":true}}}`, *id, *typ, time.Now().Unix()))
	if *file != "" {
		var err error
		if *file == "-" {
			body, err = io.ReadAll(os.Stdin)
		} else {
			body, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
	}
	h, err := sign(*scheme, *secret, *id, *typ, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s\n%s", resp.Status, *id, strings.TrimRight(string(answer), "\n"))
	if len(answer) > 0 {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// sign returns the headers of body signed under scheme.
func sign(scheme, secret, id, typ string, body []byte) (http.Header, error) {
	now := time.Now()
	switch scheme {
	case "stripe":
		return webhook.SignStripe(secret, now, body), nil
	case "github":
		return webhook.SignGitHub(secret, id, typ, body), nil
	case "shopify":
		return webhook.SignShopify(secret, id, typ, body), nil
	case "slack":
		return webhook.SignSlack(secret, now, body), nil
	case "standard", "svix":
		return webhook.SignStandardWebhooks(secret, id, now, body)
	}
	return nil, errors.New("unknown scheme " + scheme + "; one of stripe, github, shopify, slack, standard")
}
