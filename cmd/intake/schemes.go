package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// provider is what the CLI knows of one webhook scheme: how a secret
// becomes the receiver's verifier (relay) and a signer (send, listen
// --resign), the body the provider sends when --file is not given, and
// its handshake, if it has one.
type provider struct {
	name   string
	secret string // what --secret is, for --help and errors
	// verifier is the receiver's side. For an asymmetric scheme its secret
	// is the public key.
	verifier func(secret string) *webhook.Scheme
	// public maps a signing secret to the verifier's (an asymmetric
	// scheme's private key to its public key); nil: the same secret.
	public func(secret string) (string, error)
	// sign signs m in place: headers, and the URL where the provider
	// signs it.
	sign func(secret string, m *message) error
	// body is the provider's body shape for an event with id and type;
	// nil: a Stripe-like JSON event. Where the receiver derives the id
	// from the content (Meta, Zoom, SendGrid), the body holds no time, so
	// that the same --id sent twice is the same event, as a provider's
	// retry is.
	body func(id, typ string, now time.Time) []byte
	// handshake turns m into the provider's endpoint check, with
	// challenge; nil: the provider has none.
	handshake func(secret string, m *message, challenge string) error
	form      bool // the body is form-encoded
	// notifyOnly: the scheme's notifications store nothing and trigger the
	// program's poller; send signs them, the relay cannot receive them.
	notifyOnly bool
}

// message is a request being signed.
type message struct {
	method  string
	url     string
	header  http.Header
	body    []byte
	id, typ string
	now     time.Time
}

// cliHMAC is the configuration of the "hmac" scheme on the command line:
// X-Signature: sha256=<hex HMAC-SHA256 of the body>, X-Event-Id, X-Event-Type.
func cliHMAC(secret string) webhook.HMACConfig {
	return webhook.HMACConfig{Secrets: []string{secret}, Header: "X-Signature", Prefix: "sha256=",
		IDHeader: "X-Event-Id", TypeHeader: "X-Event-Type"}
}

func set(h http.Header, kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
}

func merge(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// boxKeys splits Box's secret, primary[:secondary].
func boxKeys(secret string) (primary, secondary string) {
	primary, secondary, _ = strings.Cut(secret, ":")
	return primary, secondary
}

// metaSecret splits Meta's secret, verify_token:app_secret.
func metaSecret(secret string) (token, app string) {
	token, app, _ = strings.Cut(secret, ":")
	return token, app
}

// ed25519Key reads a private key: the hex of its 32-byte seed or of the
// 64-byte key (Discord), or "whsk_" and the base64 of either (Standard
// Webhooks).
func ed25519Key(secret string) (ed25519.PrivateKey, error) {
	var raw []byte
	var err error
	if b64, ok := strings.CutPrefix(secret, "whsk_"); ok {
		raw, err = base64.StdEncoding.DecodeString(b64)
	} else {
		raw, err = hex.DecodeString(secret)
	}
	switch {
	case err != nil:
	case len(raw) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case len(raw) == ed25519.PrivateKeySize:
		return ed25519.PrivateKey(raw), nil
	}
	return nil, errors.New(`the signing secret is an Ed25519 private key: the hex of its 32-byte seed, or "whsk_" and its base64`)
}

// ecdsaKey reads SendGrid's signing key as a test would have it: the
// base64 of a PKCS #8 or SEC 1 DER P-256 private key.
func ecdsaKey(secret string) (*ecdsa.PrivateKey, error) {
	der, err := base64.StdEncoding.DecodeString(secret)
	if err == nil {
		if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
			if ec, ok := k.(*ecdsa.PrivateKey); ok {
				return ec, nil
			}
		}
		if ec, err := x509.ParseECPrivateKey(der); err == nil {
			return ec, nil
		}
	}
	return nil, errors.New("the signing secret is a P-256 private key: the base64 of its PKCS #8 or SEC 1 DER")
}

var providers = []provider{
	{name: "standard", secret: `"whsec_…" (HMAC), or to sign with Ed25519 "whsk_…" (the receiver takes "whpk_…")`,
		verifier: func(s string) *webhook.Scheme { return webhook.StandardWebhooks(s) },
		public: func(s string) (string, error) {
			if !strings.HasPrefix(s, "whsk_") {
				return s, nil
			}
			k, err := ed25519Key(s)
			if err != nil {
				return "", err
			}
			return webhook.StandardWebhooksPublicKey(k.Public().(ed25519.PublicKey)), nil
		},
		sign: func(s string, m *message) error {
			if strings.HasPrefix(s, "whsk_") {
				k, err := ed25519Key(s)
				if err != nil {
					return err
				}
				merge(m.header, webhook.SignStandardWebhooksEd25519(k, m.id, m.now, m.body))
				return nil
			}
			h, err := webhook.SignStandardWebhooks(s, m.id, m.now, m.body)
			merge(m.header, h)
			return err
		},
		body: func(_, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"type":%s,"timestamp":%q,"data":{"test":true}}`, jsonString(typ), now.UTC().Format(time.RFC3339))
		}},
	{name: "stripe", secret: `the endpoint's signing secret, "whsec_…"`,
		verifier: func(s string) *webhook.Scheme { return webhook.Stripe(s) },
		sign:     func(s string, m *message) error { merge(m.header, webhook.SignStripe(s, m.now, m.body)); return nil }},
	{name: "github", secret: "the webhook's secret",
		verifier: func(s string) *webhook.Scheme { return webhook.GitHub(s) },
		sign: func(s string, m *message) error {
			merge(m.header, webhook.SignGitHub(s, m.id, m.typ, m.body))
			return nil
		}},
	{name: "shopify", secret: "the app's client secret",
		verifier: func(s string) *webhook.Scheme { return webhook.Shopify(s) },
		sign: func(s string, m *message) error {
			merge(m.header, webhook.SignShopify(s, m.id, m.typ, m.body))
			return nil
		}},
	{name: "slack", secret: "the app's signing secret",
		verifier: func(s string) *webhook.Scheme { return webhook.Slack(s) },
		sign:     func(s string, m *message) error { merge(m.header, webhook.SignSlack(s, m.now, m.body)); return nil },
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"type":"event_callback","event_id":%s,"event_time":%d,"event":{"type":%s}}`, jsonString(id), now.Unix(), jsonString(typ))
		},
		handshake: func(s string, m *message, c string) error {
			m.body = fmt.Appendf(nil, `{"token":"intake-send","challenge":%s,"type":"url_verification"}`, jsonString(c))
			return nil
		}},
	{name: "discord", secret: "the application's Ed25519 key: to sign, the hex of the private key's 32-byte seed; the receiver takes the hex public key",
		verifier: func(s string) *webhook.Scheme { return webhook.Discord(s) },
		public: func(s string) (string, error) {
			k, err := ed25519Key(s)
			if err != nil {
				return "", err
			}
			return hex.EncodeToString(k.Public().(ed25519.PublicKey)), nil
		},
		sign: func(s string, m *message) error {
			k, err := ed25519Key(s)
			if err == nil {
				merge(m.header, webhook.SignDiscord(k, m.now, m.body))
			}
			return err
		},
		body: func(id, typ string, _ time.Time) []byte {
			return fmt.Appendf(nil, `{"id":%s,"application_id":"intake-send","type":2,"token":"t","version":1,"data":{"name":%s}}`, jsonString(id), jsonString(typ))
		},
		handshake: func(_ string, m *message, _ string) error {
			m.body = []byte(`{"id":"ping","application_id":"intake-send","type":1,"version":1}`)
			return nil
		}},
	{name: "sendgrid", secret: "to sign, the base64 DER of a P-256 private key (PKCS #8 or SEC 1); the receiver takes the base64 DER public key",
		verifier: func(s string) *webhook.Scheme { return webhook.SendGrid(s) },
		public: func(s string) (string, error) {
			k, err := ecdsaKey(s)
			if err != nil {
				return "", err
			}
			der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
			return base64.StdEncoding.EncodeToString(der), err
		},
		sign: func(s string, m *message) error {
			k, err := ecdsaKey(s)
			if err != nil {
				return err
			}
			h, err := webhook.SignSendGrid(k, m.now, m.body)
			merge(m.header, h)
			return err
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `[{"email":"test@example.com","event":%s,"sg_event_id":%s}]`, jsonString(typ), jsonString(id))
		}},
	{name: "meta", secret: "verify_token:app_secret",
		verifier: func(s string) *webhook.Scheme { token, app := metaSecret(s); return webhook.Meta(token, app) },
		sign: func(s string, m *message) error {
			_, app := metaSecret(s)
			set(m.header, "X-Hub-Signature-256", webhook.SignHubSignature(nil, "sha256=", app, m.body))
			return nil
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"object":%s,"entry":[{"id":%s,"changes":[]}]}`, jsonString(typ), jsonString(id))
		},
		handshake: func(s string, m *message, c string) error {
			token, _ := metaSecret(s)
			m.method, m.body = http.MethodGet, nil
			return withQuery(m, "hub.mode", "subscribe", "hub.verify_token", token, "hub.challenge", c)
		}},
	{name: "zoom", secret: "the app's secret token",
		verifier: func(s string) *webhook.Scheme { return webhook.Zoom(s) },
		sign:     func(s string, m *message) error { merge(m.header, webhook.SignZoom(s, m.now, m.body)); return nil },
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"event":%s,"payload":{"account_id":"intake-send","object":{"id":%s}}}`, jsonString(typ), jsonString(id))
		},
		handshake: func(_ string, m *message, c string) error {
			m.body = fmt.Appendf(nil, `{"event":"endpoint.url_validation","event_ts":%d,"payload":{"plainToken":%s}}`, m.now.UnixMilli(), jsonString(c))
			return nil
		}},
	{name: "twitch", secret: "the subscription's secret",
		verifier: func(s string) *webhook.Scheme { return webhook.Twitch(s) },
		sign: func(s string, m *message) error {
			kind := m.header.Get("Twitch-Eventsub-Message-Type")
			if kind == "" {
				kind = "notification"
			}
			merge(m.header, webhook.SignTwitch(s, m.id, kind, m.typ, m.now, m.body))
			return nil
		},
		body: func(_, typ string, _ time.Time) []byte {
			return fmt.Appendf(nil, `{"subscription":{"id":"intake-send","type":%s,"version":"1"},"event":{"user_id":"1"}}`, jsonString(typ))
		},
		handshake: func(_ string, m *message, c string) error {
			m.header.Set("Twitch-Eventsub-Message-Type", "webhook_callback_verification")
			m.body = fmt.Appendf(nil, `{"challenge":%s,"subscription":{"id":"intake-send","type":%s,"version":"1"}}`, jsonString(c), jsonString(m.typ))
			return nil
		}},
	{name: "graph", secret: "the subscription's clientState",
		verifier: func(s string) *webhook.Scheme { return webhook.MicrosoftGraph(s) },
		sign:     func(string, *message) error { return nil }, // the clientState is in the body (signer.defaultBody)
		handshake: func(_ string, m *message, c string) error {
			m.body = nil
			return withQuery(m, "validationToken", c)
		}},
	{name: "twilio", secret: "the account's auth token", form: true,
		verifier: func(s string) *webhook.Scheme { return webhook.Twilio(s) },
		sign: func(s string, m *message) error {
			if json.Valid(m.body) {
				m.url = webhook.TwilioBodyURL(m.url, m.body)
				m.header.Set("Content-Type", "application/json")
			}
			set(m.header, "X-Twilio-Signature", webhook.SignTwilio(s, m.url, m.body), "I-Twilio-Idempotency-Token", m.id)
			return nil
		},
		body: func(id, typ string, _ time.Time) []byte {
			return []byte(url.Values{"MessageSid": {id}, "SmsStatus": {typ}, "From": {"+15005550006"}, "To": {"+15005550001"}}.Encode())
		}},
	{name: "square", secret: "the subscription's signature key",
		verifier: func(s string) *webhook.Scheme { return webhook.Square(s) },
		sign: func(s string, m *message) error {
			set(m.header, "X-Square-Hmacsha256-Signature", webhook.SignSquare(s, m.url, m.body))
			return nil
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"merchant_id":"intake-send","type":%s,"event_id":%s,"created_at":%q,"data":{}}`, jsonString(typ), jsonString(id), now.UTC().Format(time.RFC3339))
		}},
	{name: "paddle", secret: "the notification destination's secret key",
		verifier: func(s string) *webhook.Scheme { return webhook.Paddle(s) },
		sign: func(s string, m *message) error {
			set(m.header, "Paddle-Signature", webhook.SignPaddle(s, m.now, m.body))
			return nil
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"event_id":%s,"event_type":%s,"occurred_at":%q,"data":{}}`, jsonString(id), jsonString(typ), now.UTC().Format(time.RFC3339))
		}},
	{name: "pagerduty", secret: "the webhook subscription's secret",
		verifier: func(s string) *webhook.Scheme { return webhook.PagerDuty(s) },
		sign: func(s string, m *message) error {
			set(m.header, "X-Pagerduty-Signature", webhook.SignPagerDuty(s, m.body))
			return nil
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"event":{"id":%s,"event_type":%s,"resource_type":"incident","occurred_at":%q,"data":{}}}`, jsonString(id), jsonString(typ), now.UTC().Format(time.RFC3339))
		}},
	{name: "linear", secret: "the webhook's signing secret",
		verifier: func(s string) *webhook.Scheme { return webhook.Linear(s) },
		sign: func(s string, m *message) error {
			set(m.header, "Linear-Signature", webhook.SignLinear(s, m.body), "Linear-Delivery", m.id, "Linear-Event", m.typ)
			return nil
		},
		body: func(_, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"action":"create","type":%s,"data":{},"webhookTimestamp":%d}`, jsonString(typ), now.UnixMilli())
		}},
	{name: "intercom", secret: "the app's client secret",
		verifier: func(s string) *webhook.Scheme { return webhook.Intercom(s) },
		sign: func(s string, m *message) error {
			set(m.header, "X-Hub-Signature", webhook.SignHubSignature(sha1.New, "sha1=", s, m.body))
			return nil
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"type":"notification_event","id":%s,"topic":%s,"created_at":%d,"data":{}}`, jsonString(id), jsonString(typ), now.Unix())
		}},
	{name: "bitbucket", secret: "the webhook's secret",
		verifier: func(s string) *webhook.Scheme { return webhook.Bitbucket(s) },
		sign: func(s string, m *message) error {
			set(m.header, "X-Hub-Signature", webhook.SignHubSignature(nil, "sha256=", s, m.body), "X-Request-Uuid", m.id, "X-Event-Key", m.typ)
			return nil
		}},
	{name: "mailgun", secret: "the account's HTTP webhook signing key",
		verifier: func(s string) *webhook.Scheme { return webhook.Mailgun(s) },
		sign:     func(string, *message) error { return nil }}, // the signature is in the body (signer.defaultBody)
	{name: "gitlab", secret: "the webhook's secret token (sent as is: not a signature)",
		verifier: func(s string) *webhook.Scheme { return webhook.GitLab(s) },
		sign: func(s string, m *message) error {
			set(m.header, "X-Gitlab-Token", s, "Idempotency-Key", m.id, "X-Gitlab-Event", m.typ)
			return nil
		}},
	{name: "box", secret: "the app's primary signature key, or primary:secondary (either may be empty, not both)",
		verifier: func(s string) *webhook.Scheme { p, sec := boxKeys(s); return webhook.Box(p, sec) },
		sign: func(s string, m *message) error {
			p, sec := boxKeys(s)
			if p == "" {
				// Box signs with both keys; with only the secondary one,
				// its header alone.
				h := webhook.SignBox(sec, "", m.body, m.now)
				h.Set("BOX-SIGNATURE-SECONDARY", h.Get("BOX-SIGNATURE-PRIMARY"))
				h.Del("BOX-SIGNATURE-PRIMARY")
				merge(m.header, h)
				return nil
			}
			merge(m.header, webhook.SignBox(p, sec, m.body, m.now))
			return nil
		},
		body: func(id, typ string, now time.Time) []byte {
			return fmt.Appendf(nil, `{"type":"webhook_event","id":%s,"created_at":%q,"trigger":%s,"source":{"id":"1","type":"file"}}`, jsonString(id), now.UTC().Format(time.RFC3339), jsonString(typ))
		}},
	{name: "dropbox", secret: "the app secret (notification-only: send signs it, the relay cannot receive it)", notifyOnly: true,
		verifier: func(s string) *webhook.Scheme { return webhook.Dropbox(s) },
		sign: func(s string, m *message) error {
			merge(m.header, webhook.SignDropbox(s, m.body))
			return nil
		},
		body: func(id, _ string, _ time.Time) []byte {
			return fmt.Appendf(nil, `{"list_folder":{"accounts":[%s]},"delta":{"users":[1]}}`, jsonString("dbid:"+id))
		}},
	{name: "googlechannel", secret: "the channel's token (notification-only: send signs it, the relay cannot receive it)", notifyOnly: true,
		verifier: func(s string) *webhook.Scheme { return webhook.GoogleChannel(s) },
		sign: func(s string, m *message) error {
			state := m.typ
			if state == "" || state == "sync" {
				state = "exists"
			}
			set(m.header, "X-Goog-Channel-Id", "intake-send", "X-Goog-Channel-Token", s, "X-Goog-Resource-State", state,
				"X-Goog-Resource-Id", m.id, "X-Goog-Message-Number", strconv.FormatInt(m.now.Unix(), 10))
			return nil
		},
		body: func(string, string, time.Time) []byte { return nil }},
	{name: "hmac", secret: "a secret; the scheme: X-Signature: sha256=<hex HMAC-SHA256 of the body>, X-Event-Id, X-Event-Type",
		verifier: func(s string) *webhook.Scheme { return webhook.HMAC(cliHMAC(s)) },
		sign: func(s string, m *message) error {
			merge(m.header, webhook.SignHMAC(cliHMAC(s), s, m.id, m.typ, m.now, m.body))
			return nil
		}},
}

// withQuery adds query parameters (name, value, …) to m's URL.
func withQuery(m *message, kv ...string) error {
	u, err := url.Parse(m.url)
	if err != nil {
		return err
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	m.url = u.String()
	return nil
}

// schemeNames lists the schemes, comma-separated, for --help and errors.
func schemeNames() string {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}

// handshakeNames lists the schemes that have a handshake.
func handshakeNames() string {
	var names []string
	for _, p := range providers {
		if p.handshake != nil {
			names = append(names, p.name)
		}
	}
	return strings.Join(names, ", ")
}

// lookup returns the provider of a scheme name ("svix" is "standard").
func lookup(name string) (*provider, error) {
	if name == "svix" {
		name = "standard"
	}
	i := slices.IndexFunc(providers, func(p provider) bool { return p.name == name })
	if i < 0 {
		return nil, usagef("unknown scheme %q; one of %s", name, schemeNames())
	}
	return &providers[i], nil
}

// receiver returns the verifier of scheme for a receiver's secret, or a
// usage error that says what the secret must be (never the secret).
func receiver(scheme, secret string) (*webhook.Scheme, error) {
	p, err := lookup(scheme)
	if err != nil {
		return nil, err
	}
	if secret == "" {
		return nil, usagef("%s: empty secret; want %s", p.name, p.secret)
	}
	if p.notifyOnly {
		return nil, usagef("%s: notification-only: its notifications store nothing and trigger a poller, so a relay cannot keep them; receive them in your program with webhook.WithTrigger", p.name)
	}
	v := p.verifier(secret)
	if err := v.Err(); err != nil {
		return nil, usagef("%s: the secret is unusable (want %s): %v", p.name, p.secret, err)
	}
	return v, nil
}

// signer is a scheme ready to sign with one secret.
type signer struct {
	p      *provider
	secret string
	check  *webhook.Scheme // the receiver's verifier, to read back what was signed
}

// newSigner checks secret for scheme and returns its signer, or a usage
// error saying what the secret must be.
func newSigner(scheme, secret string) (*signer, error) {
	p, err := lookup(scheme)
	if err != nil {
		return nil, err
	}
	if secret == "" {
		return nil, usagef("%s: empty secret; want %s", p.name, p.secret)
	}
	pub := secret
	if p.public != nil {
		if pub, err = p.public(secret); err != nil {
			return nil, usagef("%s: %v", p.name, err)
		}
	}
	v := p.verifier(pub)
	if err := v.Err(); err != nil {
		return nil, usagef("%s: the secret is unusable (want %s): %v", p.name, p.secret, err)
	}
	return &signer{p: p, secret: secret, check: v}, nil
}

// defaultBody is the provider's body for an event with id and type.
func (s *signer) defaultBody(id, typ string, now time.Time) []byte {
	switch {
	case s.p.name == "graph":
		return fmt.Appendf(nil, `{"value":[{"subscriptionId":"intake-send","clientState":%s,"changeType":%s,"resource":"Users/%s","tenantId":"intake-send"}]}`,
			jsonString(s.secret), jsonString(typ), url.PathEscape(id))
	case s.p.name == "mailgun":
		token := "tok" + strconv.FormatInt(now.UnixNano(), 36)
		ts := strconv.FormatInt(now.Unix(), 10)
		return fmt.Appendf(nil, `{"signature":{"timestamp":%q,"token":%q,"signature":%q},"event-data":{"id":%s,"event":%s,"timestamp":%d}}`,
			ts, token, webhook.MailgunSignature(s.secret, ts, token), jsonString(id), jsonString(typ), now.Unix())
	case s.p.body != nil:
		return s.p.body(id, typ, now)
	}
	return fmt.Appendf(nil, `{"id":%s,"type":%s,"created":%d,"data":{"object":{"test":true}}}`, jsonString(id), jsonString(typ), now.Unix())
}

// sign signs m and returns the event the receiver makes of it (its id
// the one the receiver stores), read back with the receiver's own
// verifier: a body that lacks what the scheme reads fails here, with the
// scheme's own error.
func (s *signer) sign(m *message) (event.Event, error) {
	if m.header.Get("Content-Type") == "" {
		ct := "application/json"
		if s.p.form && !json.Valid(m.body) {
			ct = "application/x-www-form-urlencoded"
		}
		m.header.Set("Content-Type", ct)
	}
	if err := s.p.sign(s.secret, m); err != nil {
		return event.Event{}, fmt.Errorf("%s: %w", s.p.name, err)
	}
	e, err := s.check.VerifyRequest(&webhook.Request{Method: m.method, URL: m.url, Header: m.header, Body: m.body})
	if err != nil {
		return event.Event{}, err
	}
	if e.Payload == nil {
		e.Payload = m.body
	}
	if e.ID == "" {
		e.ID = event.ContentID(e) // as the handler does
	}
	return e, nil
}

// handshake turns m into the provider's endpoint check and signs it.
func (s *signer) handshake(m *message, challenge string) error {
	if s.p.handshake == nil {
		return usagef("--handshake: %s has none; the schemes with one: %s", s.p.name, handshakeNames())
	}
	if err := s.p.handshake(s.secret, m, challenge); err != nil {
		return err
	}
	m.header.Set("Content-Type", "application/json")
	if m.method == http.MethodGet {
		m.header.Del("Content-Type")
		return nil // Meta's GET carries the verify token, no signature
	}
	if m.body == nil {
		return nil // Graph's validationToken is not signed
	}
	return s.p.sign(s.secret, m)
}
