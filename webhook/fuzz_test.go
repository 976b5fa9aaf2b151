package webhook_test

import (
	"net/http"
	"testing"

	"github.com/intakehq/intake/webhook"
)

// checkAccepted is the property every verifier fuzz target checks: when
// Verify accepts (h, b), it must reject the same headers with any other
// body, since the MAC covers the body.
func checkAccepted(t *testing.T, v webhook.Verifier, h http.Header, b []byte) {
	t.Helper()
	e, err := v.Verify(h, b)
	if err != nil {
		return
	}
	if e.ID == "" {
		t.Fatalf("accepted with an empty id")
	}
	other := append([]byte{}, b...)
	if len(other) == 0 {
		other = []byte{0}
	} else {
		other[len(other)/2] ^= 0x20
	}
	if _, err := v.Verify(h, other); err == nil {
		t.Fatalf("accepted body %q and also %q under headers %v", b, other, h)
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func FuzzStandardWebhooks(f *testing.F) {
	h, _ := webhook.SignStandardWebhooks(whsec, "msg_1", now, body)
	f.Add("msg_1", h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature"), body)
	f.Add("msg_1", "1700000000", "v1, v1a,xx v1,", []byte(`{}`))
	v := webhook.StandardWebhooks(whsec).WithClock(clock)
	f.Fuzz(func(t *testing.T, id, ts, sig string, b []byte) {
		checkAccepted(t, v, header("Webhook-Id", id, "Webhook-Timestamp", ts, "Webhook-Signature", sig), b)
	})
}

func FuzzStripe(f *testing.F) {
	f.Add(webhook.SignStripe(stripeSec, now, body).Get("Stripe-Signature"), body)
	f.Add("t=1700000000,v1=,v1=00", []byte(`{"id":"x"}`))
	v := webhook.Stripe(stripeSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("Stripe-Signature", sig), b)
	})
}

func FuzzGitHub(f *testing.F) {
	f.Add(webhook.SignGitHub(plainSec, "d", "push", body).Get("X-Hub-Signature-256"), body)
	f.Add("sha256=", []byte{})
	v := webhook.GitHub(plainSec)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("X-Hub-Signature-256", sig, "X-GitHub-Delivery", "d"), b)
	})
}

func FuzzShopify(f *testing.F) {
	f.Add(webhook.SignShopify(plainSec, "w", "t", body).Get("X-Shopify-Hmac-Sha256"), body)
	f.Add("====", []byte{})
	v := webhook.Shopify(plainSec)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("X-Shopify-Hmac-Sha256", sig, "X-Shopify-Webhook-Id", "w"), b)
	})
}

func FuzzSlack(f *testing.F) {
	h := webhook.SignSlack(plainSec, now, body)
	f.Add(h.Get("X-Slack-Signature"), h.Get("X-Slack-Request-Timestamp"), body)
	f.Add("v0=", "1700000000", []byte(`{"type":"url_verification","challenge":"c"}`))
	v := webhook.Slack(plainSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		checkAccepted(t, v, header("X-Slack-Signature", sig, "X-Slack-Request-Timestamp", ts), b)
	})
}

func FuzzHMAC(f *testing.F) {
	cfg := hmacCfg(plainSec)
	h := webhook.SignHMAC(cfg, plainSec, "id", "ty", now, body)
	f.Add(h.Get("X-Sig"), h.Get("X-Ts"), body)
	f.Add("sha512=", "", []byte{})
	v := webhook.HMAC(cfg).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		checkAccepted(t, v, header("X-Sig", sig, "X-Ts", ts, "X-Id", "id"), b)
	})
}
