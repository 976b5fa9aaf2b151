package webhook_test

import (
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

var (
	now       = time.Unix(1_700_000_000, 0)
	clock     = func() time.Time { return now }
	whsec     = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	whsecOld  = "whsec_" + base64.StdEncoding.EncodeToString([]byte("an older key that is rotated out"))
	stripeSec = "whsec_stripe_test_secret"
	plainSec  = "It's a Secret to Everybody"
	otherSec  = "another secret"
)

// Published test vectors.

func TestGitHubPublishedVector(t *testing.T) {
	// From GitHub's "Validating webhook deliveries".
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set("X-GitHub-Event", "issues")
	e, err := webhook.GitHub("It's a Secret to Everybody").Verify(h, []byte("Hello, World!"))
	require.NoError(t, err)
	assert.Equal(t, "72d3162e-cc78-11e3-81ab-4c9367dc0958", e.ID)
	assert.Equal(t, "issues", e.Type)

	_, err = webhook.GitHub("It's a Secret to Everybody").Verify(h, []byte("Hello, World?"))
	assert.ErrorIs(t, err, webhook.ErrSignatureMismatch)
}

func TestStandardWebhooksPublishedVector(t *testing.T) {
	// The Standard Webhooks specification's test vector.
	h := http.Header{}
	h.Set("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("Webhook-Timestamp", "1614265330")
	h.Set("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)
	at := func() time.Time { return time.Unix(1614265330, 0) }

	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		e, err := webhook.StandardWebhooks(secret).WithClock(at).Verify(h, body)
		require.NoError(t, err, secret)
		assert.Equal(t, "msg_p5jXN8AQM9LWM0D4loKWxJek", e.ID)
	}
	got, err := webhook.SignStandardWebhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body)
	require.NoError(t, err)
	assert.Equal(t, h.Get("Webhook-Signature"), got.Get("Webhook-Signature"))
}

// scheme describes one built-in scheme for the shared table tests.
type scheme struct {
	name     string
	verifier func(secrets ...string) *webhook.Scheme
	secret   string
	other    string
	sign     func(secret string, body []byte) http.Header
	// sigHeader is the header holding the signature; empty marks an empty
	// signature value in it.
	sigHeader, emptySig string
	required            []string // headers whose absence must fail
	timestamped         string   // timestamp header, if any
	wantID              string
	payload             []byte // the body the table signs; nil: body
	// prim is the raw primitive the benchmarks compare Verify with:
	// "hmac-sha256" when empty, "hmac-sha1", "hmac-sha512", "ed25519",
	// "ecdsa-p256".
	prim string
}

// body returns the body the table signs for sc.
func (sc scheme) body() []byte {
	if sc.payload != nil {
		return sc.payload
	}
	return body
}

var body = []byte(`{"id":"evt_123","type":"invoice.paid","created":1700000000,"event_id":"Ev123","event_time":1700000000,"data":{"object":{"id":"in_1"}}}`)

func schemes() []scheme {
	return append(builtinSchemes(), providerSchemes()...)
}

func builtinSchemes() []scheme {
	return []scheme{
		{
			name: "standard", verifier: webhook.StandardWebhooks, secret: whsec, other: whsecOld,
			sign: func(secret string, b []byte) http.Header {
				h, err := webhook.SignStandardWebhooks(secret, "msg_1", now, b)
				if err != nil {
					panic(err)
				}
				return h
			},
			sigHeader: "Webhook-Signature", emptySig: "v1,",
			required:    []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"},
			timestamped: "Webhook-Timestamp", wantID: "msg_1",
		},
		{
			name: "stripe", verifier: webhook.Stripe, secret: stripeSec, other: otherSec,
			sign:      func(secret string, b []byte) http.Header { return webhook.SignStripe(secret, now, b) },
			sigHeader: "Stripe-Signature", emptySig: "t=1700000000,v1=",
			required: []string{"Stripe-Signature"}, wantID: "evt_123",
		},
		{
			name: "github", verifier: webhook.GitHub, secret: plainSec, other: otherSec,
			sign:      func(secret string, b []byte) http.Header { return webhook.SignGitHub(secret, "d-1", "push", b) },
			sigHeader: "X-Hub-Signature-256", emptySig: "sha256=",
			required: []string{"X-Hub-Signature-256", "X-Github-Delivery"}, wantID: "d-1",
		},
		{
			name: "shopify", verifier: webhook.Shopify, secret: plainSec, other: otherSec,
			sign: func(secret string, b []byte) http.Header {
				return webhook.SignShopify(secret, "wh-1", "orders/create", b)
			},
			sigHeader: "X-Shopify-Hmac-Sha256", emptySig: "",
			required: []string{"X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id"}, wantID: "wh-1",
		},
		{
			name: "slack", verifier: webhook.Slack, secret: plainSec, other: otherSec,
			sign:      func(secret string, b []byte) http.Header { return webhook.SignSlack(secret, now, b) },
			sigHeader: "X-Slack-Signature", emptySig: "v0=",
			required:    []string{"X-Slack-Signature", "X-Slack-Request-Timestamp"},
			timestamped: "X-Slack-Request-Timestamp", wantID: "Ev123",
		},
		{
			name: "hmac", verifier: func(secrets ...string) *webhook.Scheme { return webhook.HMAC(hmacCfg(secrets...)) },
			secret: plainSec, other: otherSec, prim: "hmac-sha512",
			sign: func(secret string, b []byte) http.Header {
				return webhook.SignHMAC(hmacCfg(), secret, "id-9", "thing", now, b)
			},
			sigHeader: "X-Sig", emptySig: "sha512=",
			required:    []string{"X-Sig", "X-Ts", "X-Id"},
			timestamped: "X-Ts", wantID: "id-9",
		},
	}
}

func hmacCfg(secrets ...string) webhook.HMACConfig {
	return webhook.HMACConfig{
		Secrets: secrets, Header: "X-Sig", Prefix: "sha512=", Encoding: webhook.Base64, Hash: sha512.New,
		Content: webhook.TimestampDotBody, TimestampHeader: "X-Ts", IDHeader: "X-Id", TypeHeader: "X-Type",
	}
}

func TestSchemes(t *testing.T) {
	for _, sc := range schemes() {
		t.Run(sc.name, func(t *testing.T) {
			v := sc.verifier(sc.secret).WithClock(clock)
			body := sc.body()
			verify := func(v *webhook.Scheme, h http.Header, b []byte) error {
				_, err := v.Verify(h, b)
				return err
			}

			t.Run("round trip", func(t *testing.T) {
				e, err := v.Verify(sc.sign(sc.secret, body), body)
				require.NoError(t, err)
				assert.Equal(t, sc.wantID, e.ID)
				assert.Equal(t, body, e.Payload)
			})
			t.Run("tampered body", func(t *testing.T) {
				b := append([]byte(nil), body...)
				b[len(b)-2] ^= 1
				assert.ErrorIs(t, verify(v, sc.sign(sc.secret, body), b), webhook.ErrSignatureMismatch)
			})
			t.Run("wrong secret", func(t *testing.T) {
				assert.ErrorIs(t, verify(v, sc.sign(sc.other, body), body), webhook.ErrSignatureMismatch)
			})
			t.Run("rotated secrets", func(t *testing.T) {
				both := sc.verifier(sc.other, sc.secret).WithClock(clock)
				assert.NoError(t, verify(both, sc.sign(sc.secret, body), body))
				assert.NoError(t, verify(both, sc.sign(sc.other, body), body))
			})
			t.Run("fail closed without secret", func(t *testing.T) {
				h := sc.sign(sc.secret, body)
				assert.ErrorIs(t, verify(sc.verifier().WithClock(clock), h, body), webhook.ErrNoSecret)
				assert.ErrorIs(t, verify(sc.verifier("").WithClock(clock), h, body), webhook.ErrNoSecret)
				assert.ErrorIs(t, verify(sc.verifier(sc.secret, "").WithClock(clock), h, body), webhook.ErrNoSecret)
			})
			t.Run("empty signature", func(t *testing.T) {
				h := sc.sign(sc.secret, body)
				h.Set(sc.sigHeader, sc.emptySig)
				err := verify(v, h, body)
				require.Error(t, err)
				assert.True(t, errors.Is(err, webhook.ErrMalformedSignature) || errors.Is(err, webhook.ErrMissingSignature) ||
					errors.Is(err, webhook.ErrSignatureMismatch), "%v", err)
			})
			t.Run("truncated signature", func(t *testing.T) {
				h := sc.sign(sc.secret, body)
				s := h.Get(sc.sigHeader)
				h.Set(sc.sigHeader, s[:len(s)-4])
				assert.Error(t, verify(v, h, body))
			})
			for _, name := range sc.required {
				t.Run("missing "+name, func(t *testing.T) {
					h := sc.sign(sc.secret, body)
					h.Del(name)
					err := verify(v, h, body)
					require.Error(t, err)
				})
			}
			if sc.timestamped != "" {
				t.Run("expired and future timestamps", func(t *testing.T) {
					h := sc.sign(sc.secret, body)
					for _, d := range []time.Duration{-6 * time.Minute, 6 * time.Minute, -100 * 365 * 24 * time.Hour} {
						at := func() time.Time { return now.Add(-d) }
						assert.ErrorIs(t, verify(v.WithClock(at), h, body), webhook.ErrTimestamp, "clock off by %v", d)
					}
					assert.NoError(t, verify(v.WithClock(func() time.Time { return now.Add(4 * time.Minute) }), h, body))
					assert.NoError(t, verify(v.WithTolerance(time.Hour).WithClock(func() time.Time { return now.Add(59 * time.Minute) }), h, body))
				})
				t.Run("tampered timestamp", func(t *testing.T) {
					h := sc.sign(sc.secret, body)
					h.Set(sc.timestamped, "1700000001")
					assert.ErrorIs(t, verify(v, h, body), webhook.ErrSignatureMismatch)
				})
				t.Run("non-numeric and overflowing timestamps", func(t *testing.T) {
					for _, ts := range []string{"abc", "-1", "99999999999999999999999", "1e9", " 1700000000"} {
						h := sc.sign(sc.secret, body)
						h.Set(sc.timestamped, ts)
						assert.Error(t, verify(v, h, body), ts)
					}
				})
			}
			t.Run("extremely long header", func(t *testing.T) {
				h := sc.sign(sc.secret, body)
				h.Set(sc.sigHeader, h.Get(sc.sigHeader)+strings.Repeat("a", 1<<16))
				assert.Error(t, verify(v, h, body))
			})
		})
	}
}

func TestStandardWebhooksHeaderForms(t *testing.T) {
	v := webhook.StandardWebhooks(whsec).WithClock(clock)
	good, err := webhook.SignStandardWebhooks(whsec, "msg_1", now, body)
	require.NoError(t, err)
	sig := good.Get("Webhook-Signature")
	wrong, _ := webhook.SignStandardWebhooks(whsecOld, "msg_1", now, body)

	tests := []struct {
		name, header string
		wantErr      error
	}{
		{"one entry", sig, nil},
		{"valid after invalid", wrong.Get("Webhook-Signature") + " " + sig, nil},
		{"valid before invalid", sig + " " + wrong.Get("Webhook-Signature"), nil},
		{"v1a entries ignored", "v1a,AAAA " + sig, nil},
		{"only other versions", "v2," + strings.TrimPrefix(sig, "v1,"), webhook.ErrMalformedSignature},
		{"empty v1", "v1,", webhook.ErrSignatureMismatch},
		{"not base64", "v1,!!!!", webhook.ErrSignatureMismatch},
		{"wrong only", wrong.Get("Webhook-Signature"), webhook.ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good.Clone()
			h.Set("Webhook-Signature", tt.header)
			_, err := v.Verify(h, body)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}

	t.Run("repeated header", func(t *testing.T) {
		h := good.Clone()
		h.Set("Webhook-Signature", wrong.Get("Webhook-Signature"))
		h.Add("Webhook-Signature", sig)
		_, err := v.Verify(h, body)
		assert.NoError(t, err)
	})
	t.Run("svix headers", func(t *testing.T) {
		h := http.Header{}
		h.Set("Svix-Id", good.Get("Webhook-Id"))
		h.Set("Svix-Timestamp", good.Get("Webhook-Timestamp"))
		h.Set("Svix-Signature", sig)
		e, err := v.Verify(h, body)
		require.NoError(t, err)
		assert.Equal(t, "msg_1", e.ID)
	})
	t.Run("replayed with a new id", func(t *testing.T) {
		h := good.Clone()
		h.Set("Webhook-Id", "msg_2")
		_, err := v.Verify(h, body)
		assert.ErrorIs(t, err, webhook.ErrSignatureMismatch)
	})
	t.Run("type and time from the payload", func(t *testing.T) {
		b := []byte(`{"type":"user.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{}}`)
		h, _ := webhook.SignStandardWebhooks(whsec, "msg_3", now, b)
		e, err := v.Verify(h, b)
		require.NoError(t, err)
		assert.Equal(t, "user.created", e.Type)
		assert.Equal(t, time.Date(2022, 11, 3, 20, 26, 10, 344522000, time.UTC), e.Time.UTC())
	})
	t.Run("secret not base64", func(t *testing.T) {
		_, err := webhook.StandardWebhooks("whsec_!!!").Verify(good, body)
		assert.ErrorIs(t, err, webhook.ErrNoSecret)
	})
}

func TestStripeHeaderForms(t *testing.T) {
	v := webhook.Stripe(stripeSec).WithClock(clock)
	good := webhook.SignStripe(stripeSec, now, body).Get("Stripe-Signature")
	ts, v1, _ := strings.Cut(good, ",")
	wrongV1 := "v1=" + strings.Repeat("ab", 32)

	tests := []struct {
		name, header string
		wantErr      error
	}{
		{"reordered", v1 + "," + ts, nil},
		{"several v1", ts + "," + wrongV1 + "," + v1, nil},
		{"v0 ignored", ts + ",v0=" + strings.Repeat("00", 32) + "," + v1, nil},
		{"spaces", ts + ", " + v1, nil},
		{"no v1", ts + ",v0=" + strings.TrimPrefix(v1, "v1="), webhook.ErrMalformedSignature},
		{"no t", v1, webhook.ErrMalformedSignature},
		{"two different t", ts + ",t=1700000001," + v1, webhook.ErrMalformedSignature},
		{"empty v1", ts + ",v1=", webhook.ErrSignatureMismatch},
		{"odd hex", ts + ",v1=abc", webhook.ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Stripe-Signature", tt.header)
			e, err := v.Verify(h, body)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "evt_123", e.ID)
			assert.Equal(t, "invoice.paid", e.Type)
			assert.Equal(t, time.Unix(1700000000, 0), e.Time)
		})
	}
	t.Run("body without id", func(t *testing.T) {
		b := []byte(`{"type":"x"}`)
		_, err := v.Verify(webhook.SignStripe(stripeSec, now, b), b)
		assert.ErrorIs(t, err, webhook.ErrMalformed)
		b = []byte(`not json`)
		_, err = v.Verify(webhook.SignStripe(stripeSec, now, b), b)
		assert.ErrorIs(t, err, webhook.ErrMalformed)
	})
	t.Run("key is the whsec string as given", func(t *testing.T) {
		// Unlike Standard Webhooks, Stripe does not base64-decode its secret.
		_, err := webhook.Stripe(stripeSec).WithClock(clock).Verify(webhook.SignHMAC(webhook.HMACConfig{
			Header: "Stripe-Signature", Prefix: "t=1700000000,v1=", Content: webhook.TimestampDotBody, TimestampHeader: "X-Unused",
		}, stripeSec, "", "", now, body), body)
		assert.NoError(t, err)
	})
}

func TestSlack(t *testing.T) {
	v := webhook.Slack(plainSec).WithClock(clock)
	t.Run("event callback", func(t *testing.T) {
		b := []byte(`{"token":"x","team_id":"T1","event":{"type":"app_mention","text":"hi"},"type":"event_callback","event_id":"Ev08","event_time":1700000000}`)
		e, err := v.Verify(webhook.SignSlack(plainSec, now, b), b)
		require.NoError(t, err)
		assert.Equal(t, "Ev08", e.ID)
		assert.Equal(t, "app_mention", e.Type)
		assert.Equal(t, time.Unix(1700000000, 0), e.Time)
	})
	t.Run("url verification", func(t *testing.T) {
		b := []byte(`{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
		_, err := v.Verify(webhook.SignSlack(plainSec, now, b), b)
		var reply *webhook.Reply
		require.ErrorAs(t, err, &reply)
		assert.Equal(t, http.StatusOK, reply.Status)
		assert.Equal(t, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", string(reply.Body))
		// An unsigned challenge is refused like anything else.
		_, err = v.Verify(webhook.SignSlack(otherSec, now, b), b)
		assert.ErrorIs(t, err, webhook.ErrSignatureMismatch)
	})
	t.Run("form body gets a content id", func(t *testing.T) {
		b := []byte(`token=x&team_id=T1&command=%2Fweather&text=94070`)
		e1, err := v.Verify(webhook.SignSlack(plainSec, now, b), b)
		require.NoError(t, err)
		e2, err := v.Verify(webhook.SignSlack(plainSec, now.Add(time.Second), b), b)
		require.NoError(t, err)
		assert.Equal(t, e1.ID, e2.ID, "derived from content, not arrival")
		assert.True(t, strings.HasPrefix(e1.ID, "sha256:"))
	})
}

func TestHMACConfigErrors(t *testing.T) {
	h := http.Header{}
	_, err := webhook.HMAC(webhook.HMACConfig{Secrets: []string{"s"}}).Verify(h, body)
	assert.ErrorIs(t, err, webhook.ErrNoSecret, "no header configured")
	_, err = webhook.HMAC(webhook.HMACConfig{Secrets: []string{"s"}, Header: "X-Sig", Content: webhook.TimestampDotBody}).Verify(h, body)
	assert.ErrorIs(t, err, webhook.ErrNoSecret, "timestamp content without timestamp header")

	// Body-only, hex, no id header: the id comes from the content.
	cfg := webhook.HMACConfig{Secrets: []string{"s"}, Header: "X-Sig"}
	e, err := webhook.HMAC(cfg).Verify(webhook.SignHMAC(cfg, "s", "", "", now, body), body)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(e.ID, "sha256:"))
}

func TestErrorsNeverContainSecrets(t *testing.T) {
	for _, sc := range schemes() {
		v := sc.verifier(sc.secret).WithClock(clock)
		body := sc.body()
		good := sc.sign(sc.secret, body)
		b := append([]byte("x"), body...)
		_, err := v.Verify(good, b)
		require.Error(t, err)
		msg := err.Error()
		assert.NotContains(t, msg, sc.secret)
		assert.NotContains(t, msg, good.Get(sc.sigHeader))
	}
}

// Verify and event are both used; keep the import honest.
var _ webhook.Verifier = webhook.VerifierFunc(func(http.Header, []byte) (event.Event, error) { return event.Event{}, nil })
