package webhook_test

import (
	"crypto/sha1"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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
	checkSigned(t, v, h, b)
}

// checkSigned is checkAccepted for the schemes whose events may have no
// id of their own (the handler derives one from the content).
func checkSigned(t *testing.T, v webhook.Verifier, h http.Header, b []byte) {
	t.Helper()
	if _, err := v.Verify(h, b); err != nil {
		return
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

func FuzzStandardWebhooksEd25519(f *testing.F) {
	h := webhook.SignStandardWebhooksEd25519(edKeys[whpk1], "msg_1", now, body)
	f.Add(h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature"), body)
	f.Add("1700000000", "v1a,"+strings.Repeat("A", 88)+" v1a,", []byte(`{}`))
	v := webhook.StandardWebhooks(whpk1, whsec).WithClock(clock)
	f.Fuzz(func(t *testing.T, ts, sig string, b []byte) {
		checkAccepted(t, v, header("Webhook-Id", "msg_1", "Webhook-Timestamp", ts, "Webhook-Signature", sig), b)
	})
}

func FuzzDiscord(f *testing.F) {
	h := webhook.SignDiscord(edKeys[discord1], now, discordBody)
	f.Add(h.Get("X-Signature-Ed25519"), h.Get("X-Signature-Timestamp"), discordBody)
	f.Add(strings.Repeat("0", 128), "1700000000", []byte(`{"type":1}`))
	v := webhook.Discord(discord1).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		checkSigned(t, v, header("X-Signature-Ed25519", sig, "X-Signature-Timestamp", ts), b)
	})
}

func FuzzSendGrid(f *testing.F) {
	b := []byte(`[{"event":"delivered"}]`)
	h, _ := webhook.SignSendGrid(ecKeys[sendgrd1], now, b)
	f.Add(h.Get("X-Twilio-Email-Event-Webhook-Signature"), h.Get("X-Twilio-Email-Event-Webhook-Timestamp"), b)
	f.Add("MEUCIQ==", "1700000000", []byte{})
	v := webhook.SendGrid(sendgrd1).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		checkSigned(t, v, header("X-Twilio-Email-Event-Webhook-Signature", sig, "X-Twilio-Email-Event-Webhook-Timestamp", ts), b)
	})
}

func FuzzMeta(f *testing.F) {
	f.Add(webhook.SignHubSignature(nil, "sha256=", plainSec, body), body, "hub.mode=subscribe&hub.verify_token=my+verify+token&hub.challenge=1")
	f.Add("sha256=", []byte{}, "hub.mode=subscribe&hub.verify_token=&hub.challenge=%zz")
	v := webhook.Meta(metaToken, plainSec)
	f.Fuzz(func(t *testing.T, sig string, b []byte, query string) {
		checkSigned(t, v, header("X-Hub-Signature-256", sig), b)
		// A GET is answered only with the right token.
		_, err := v.VerifyRequest(&webhook.Request{Method: http.MethodGet, URL: "https://example.com/?" + query, Header: http.Header{}})
		var reply *webhook.Reply
		if errors.As(err, &reply) {
			q, _ := url.ParseQuery(query)
			if q.Get("hub.verify_token") != metaToken || q.Get("hub.mode") != "subscribe" {
				t.Fatalf("answered the challenge of %q", query)
			}
		}
	})
}

func FuzzZoom(f *testing.F) {
	h := webhook.SignZoom(plainSec, now, zoomBody)
	f.Add(h.Get("X-Zm-Signature"), h.Get("X-Zm-Request-Timestamp"), zoomBody)
	f.Add("v0=", "1700000000", []byte(`{"event":"endpoint.url_validation","payload":{"plainToken":""}}`))
	v := webhook.Zoom(plainSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		checkSigned(t, v, header("X-Zm-Signature", sig, "X-Zm-Request-Timestamp", ts), b)
	})
}

func FuzzTwitch(f *testing.F) {
	h := webhook.SignTwitch(plainSec, "m-1", "notification", "channel.follow", now, twitchBody)
	f.Add(h.Get("Twitch-Eventsub-Message-Signature"), h.Get("Twitch-Eventsub-Message-Timestamp"), "notification", twitchBody)
	f.Add("sha256=", "2023-11-14T22:13:20Z", "webhook_callback_verification", []byte(`{"challenge":""}`))
	v := webhook.Twitch(plainSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig, ts, kind string, b []byte) {
		checkAccepted(t, v, header("Twitch-Eventsub-Message-Signature", sig, "Twitch-Eventsub-Message-Timestamp", ts,
			"Twitch-Eventsub-Message-Id", "m-1", "Twitch-Eventsub-Message-Type", kind), b)
	})
}

func FuzzTwilio(f *testing.F) {
	const u = "https://example.com/sms?x=1"
	form := []byte("From=%2B15551234567&Body=hello+there&MessageSid=SM1")
	f.Add(webhook.SignTwilio(plainSec, u, form), "", form)
	f.Add("", "bodySHA256=00", []byte(`{}`))
	f.Add("AAAA", "bodySHA256="+strings.Repeat("0", 64), []byte("a=%&b"))
	f.Fuzz(func(t *testing.T, sig, query string, b []byte) {
		v := webhook.Twilio(plainSec).WithPublicURL(u + "&" + query)
		checkSigned(t, v, header("X-Twilio-Signature", sig), b)
	})
}

func FuzzSquare(f *testing.F) {
	f.Add(webhook.SignSquare(plainSec, squareURL, body), body)
	f.Add("", []byte{})
	v := webhook.Square(plainSec).WithPublicURL(squareURL)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("X-Square-Hmacsha256-Signature", sig), b)
	})
}

func FuzzPaddle(f *testing.F) {
	f.Add(webhook.SignPaddle(plainSec, now, body), body)
	f.Add("ts=1700000000;h1=;h1=;ts=1", []byte(`{"event_id":"x"}`))
	v := webhook.Paddle(plainSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("Paddle-Signature", sig), b)
	})
}

func FuzzPagerDuty(f *testing.F) {
	f.Add(webhook.SignPagerDuty(plainSec, pagerdutyBody), pagerdutyBody)
	f.Add("v1=,v1=00, v2=11", []byte(`{"event":{"id":"x"}}`))
	v := webhook.PagerDuty(plainSec)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("X-Pagerduty-Signature", sig), b)
	})
}

func FuzzLinear(f *testing.F) {
	f.Add(webhook.SignLinear(plainSec, linearBody), linearBody)
	f.Add("", []byte(`{"webhookTimestamp":"1700000000000"}`))
	v := webhook.Linear(plainSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, v, header("Linear-Signature", sig, "Linear-Delivery", "d"), b)
	})
}

func FuzzHubSignature(f *testing.F) {
	f.Add(webhook.SignHubSignature(sha1.New, "sha1=", plainSec, body), body)
	f.Add("sha256=", []byte{})
	intercom, bitbucket := webhook.Intercom(plainSec), webhook.Bitbucket(plainSec)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		checkAccepted(t, intercom, header("X-Hub-Signature", sig), b)
		checkAccepted(t, bitbucket, header("X-Hub-Signature", sig, "X-Request-Uuid", "r"), b)
	})
}

// Mailgun signs the timestamp and token, not the body: what an accepted
// body must satisfy is that another token fails.
func FuzzMailgun(f *testing.F) {
	sig := webhook.MailgunSignature(plainSec, "1700000000", "tok")
	f.Add([]byte(`{"signature":{"timestamp":"1700000000","token":"tok","signature":"` + sig + `"},"event-data":{"id":"e"}}`))
	f.Add([]byte(`{"signature":{"timestamp":1,"token":"","signature":""}}`))
	v := webhook.Mailgun(plainSec).WithClock(clock)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := v.Verify(http.Header{}, b); err != nil {
			return
		}
		var p struct {
			Signature struct{ Timestamp, Token, Signature string }
		}
		// Hex in either case is the same MAC.
		if json.Unmarshal(b, &p) == nil && !strings.EqualFold(p.Signature.Signature, webhook.MailgunSignature(plainSec, p.Signature.Timestamp, p.Signature.Token)) {
			t.Fatalf("accepted %q, whose signature is not the MAC of its timestamp and token", b)
		}
	})
}

// Graph: accepted only when every item carries the client state, as
// encoding/json reads the body.
func FuzzMicrosoftGraph(f *testing.F) {
	f.Add([]byte(`{"value":[{"clientState":"cs","changeType":"created"}]}`))
	f.Add([]byte(`{"value":[{"clientState":"cs"},{"clientState":"c\u0073"},{}]}`))
	v := webhook.MicrosoftGraph("cs")
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := v.Verify(http.Header{}, b); err != nil {
			return
		}
		var p struct {
			Value []struct {
				ClientState *string `json:"clientState"`
			} `json:"value"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return // not JSON encoding/json accepts: the lenient scanner's call
		}
		for _, it := range p.Value {
			if it.ClientState == nil || *it.ClientState != "cs" {
				t.Fatalf("accepted %q with an item without the client state", b)
			}
		}
	})
}

func FuzzDropbox(f *testing.F) {
	f.Add(webhook.SignDropbox(plainSec, body).Get("X-Dropbox-Signature"), body, "challenge=abc")
	f.Add("zz", []byte{}, "challenge=%zz")
	v := webhook.Dropbox(plainSec)
	f.Fuzz(func(t *testing.T, sig string, b []byte, query string) {
		checkSigned(t, v, header("X-Dropbox-Signature", sig), b)
		// A GET echoes the challenge it was given, and nothing else: the
		// first challenge parameter of the query (a request target has no
		// fragment: what follows '#' is not the query).
		_, err := v.VerifyRequest(&webhook.Request{Method: http.MethodGet, URL: "https://example.com/?" + query, Header: http.Header{}})
		var reply *webhook.Reply
		if errors.As(err, &reply) {
			want, found := "", false
			q, _, _ := strings.Cut(query, "#")
			for _, kv := range strings.Split(q, "&") {
				if k, val, _ := strings.Cut(kv, "="); k == "challenge" {
					want, _ = url.QueryUnescape(val)
					found = true
					break
				}
			}
			if !found || string(reply.Body) != want {
				t.Fatalf("answered %q to the challenge of %q", reply.Body, query)
			}
		}
	})
}

func FuzzBox(f *testing.F) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	b0 := []byte(`{"id":"e-1","trigger":"FILE.UPLOADED"}`)
	h0 := webhook.SignBox(plainSec, "", b0, at)
	f.Add(h0.Get("Box-Signature-Primary"), h0.Get("Box-Delivery-Timestamp"), b0)
	f.Add("====", "2026-12-04T10:00:00+25:00", []byte{})
	v := webhook.Box(plainSec, "").WithClock(func() time.Time { return at })
	f.Fuzz(func(t *testing.T, sig, ts string, b []byte) {
		checkAccepted(t, v, header("Box-Signature-Primary", sig, "Box-Delivery-Timestamp", ts), b)
	})
}
