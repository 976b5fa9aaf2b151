package webhook_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/intakehq/intake/webhook"
)

// stripeLikeBody returns a JSON body of about n bytes shaped like a
// Stripe event: id first, a large data object, type last.
func stripeLikeBody(n int) []byte {
	return padded(n, `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2022-11-15","created":1700000000,"data":{"object":{"description":"`,
		`"}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"invoice.paid"}`)
}

// bodyFor returns a body of about n bytes shaped like the scheme's own
// provider's payloads, where the scheme reads fields from the body.
func bodyFor(scheme string, n int) []byte {
	switch scheme {
	case "standard": // the Standard Webhooks payload: type, timestamp, data
		return padded(n, `{"type":"invoice.paid","timestamp":"2022-11-03T20:26:10.344522Z","data":{"description":"`, `"}}`)
	case "discord": // an application command interaction
		return padded(n, `{"id":"1100","application_id":"A1","type":2,"token":"tok","version":1,"data":{"name":"`, `"}}`)
	case "pagerduty":
		return padded(n, `{"event":{"id":"01BWDWL3","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2023-11-14T22:13:20.000Z","data":{"title":"`, `"}}}`)
	case "linear":
		return padded(n, `{"action":"create","type":"Issue","data":{"title":"`, `"},"webhookTimestamp":1700000000000,"webhookId":"w1"}`)
	case "zoom":
		return padded(n, `{"event":"meeting.started","event_ts":1700000000000,"payload":{"object":{"topic":"`, `"}}}`)
	case "square", "paddle": // Square's and Paddle's events: event_id, type, time
		return padded(n, `{"event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","type":"payment.updated","event_type":"transaction.completed","created_at":"2023-11-14T22:13:20Z","occurred_at":"2023-11-14T22:13:20Z","data":{"note":"`, `"}}`)
	case "sendgrid": // a batch of events
		return padded(n, `[{"email":"a@example.com","event":"delivered","sg_event_id":"e1","timestamp":1700000000,"note":"`, `"}]`)
	case "twilio": // an incoming SMS, form-encoded
		return padded(n, "ToCountry=US&ToState=CA&SmsMessageSid=SM1&NumMedia=0&ToCity=&FromZip=94105&SmsSid=SM1&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&FromCountry=US&To=%2B15005550006&ToZip=&NumSegments=1&MessageSid=SM1&AccountSid=AC1&From=%2B14155551234&ApiVersion=2010-04-01&Body=",
			"")
	case "slack": // an Events API callback
		return padded(n, `{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{"type":"message","channel":"C123ABC456","user":"U123ABC456","text":"`,
			`","ts":"1355517523.000005"},"type":"event_callback","event_id":"Ev123ABC456","event_time":1700000000}`)
	}
	return stripeLikeBody(n)
}

func padded(n int, head, tail string) []byte {
	pad := max(0, n-len(head)-len(tail))
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// BenchmarkVerify compares each scheme's Verify with a raw HMAC over the
// same number of bytes in the same run: what a receiver without a library
// computes (hmac.New, Write, Sum, hmac.Equal). Each scheme verifies a body
// shaped like its provider's payloads. Compare ns/op within a size:
//
//	go test ./webhook -run x -bench Verify -benchmem
func BenchmarkVerify(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		body := stripeLikeBody(size)
		b.Run(fmt.Sprintf("size=%dKiB/scheme=raw-hmac-sha256", size>>10), func(b *testing.B) {
			key := []byte(plainSec)
			want := webhook.SignGitHub(plainSec, "d", "push", body).Get("X-Hub-Signature-256")
			wantMAC := make([]byte, 32)
			fmt.Sscanf(strings.TrimPrefix(want, "sha256="), "%x", &wantMAC)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				m := hmac.New(sha256.New, key)
				m.Write(body)
				if !hmac.Equal(m.Sum(nil), wantMAC) {
					b.Fatal("mismatch")
				}
			}
		})
		b.Run(fmt.Sprintf("size=%dKiB/scheme=raw-hmac-sha512", size>>10), func(b *testing.B) {
			key := []byte(plainSec)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				m := hmac.New(sha512.New, key)
				m.Write(body)
				m.Sum(nil)
			}
		})
		for _, sc := range schemes() {
			b.Run(fmt.Sprintf("size=%dKiB/scheme=%s", size>>10, sc.name), func(b *testing.B) {
				v, h, body := benchRequest(sc, size)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.Verify(h, body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerifyRatio reports each scheme's Verify time as a ratio to
// its raw primitive over the same bytes — HMAC (hmac.New, Write, Sum,
// hmac.Equal), ed25519.Verify, or SHA-256 and ecdsa.VerifyASN1 — measuring
// the two interleaved in batches so that the noise of a shared machine
// falls on both alike, with the allocations of one Verify:
//
//	go test ./webhook -run x -bench VerifyRatio -benchtime 20000x
func BenchmarkVerifyRatio(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, sc := range schemes() {
			b.Run(fmt.Sprintf("size=%dKiB/scheme=%s", size>>10, sc.name), func(b *testing.B) {
				v, h, body := benchRequest(sc, size)
				raw := rawPrimitive(b, sc, h, body)
				// What the handler calls, with the request it builds once.
				req := &webhook.Request{Method: http.MethodPost, URL: "https://example.com/hook", Header: h, Body: body}
				verify := func() {
					if _, err := v.VerifyRequest(req); err != nil {
						b.Fatal(err)
					}
				}
				allocs, rawAllocs := testing.AllocsPerRun(100, verify), testing.AllocsPerRun(100, raw)
				const batch = 100
				var rawT, verT time.Duration
				for done := 0; done < b.N; done += batch {
					t0 := time.Now()
					for range batch {
						raw()
					}
					t1 := time.Now()
					for range batch {
						verify()
					}
					rawT += t1.Sub(t0)
					verT += time.Since(t1)
				}
				b.ReportMetric(float64(verT)/float64(rawT), "×raw")
				b.ReportMetric(float64(verT.Nanoseconds())/float64(b.N), "verify-ns/op")
				b.ReportMetric(allocs, "verify-allocs/op")
				b.ReportMetric(rawAllocs, "raw-allocs/op")
			})
		}
	}
}

// benchRequest returns a verifier, headers and a body of about n bytes
// shaped like the scheme's provider's payloads.
func benchRequest(sc scheme, n int) (*webhook.Scheme, http.Header, []byte) {
	body := bodyFor(sc.name, n)
	switch sc.name {
	case "twilio": // a form-encoded SMS, the URL pinned
		v := webhook.Twilio(sc.secret).WithPublicURL(twilioBase)
		return v, header("X-Twilio-Signature", webhook.SignTwilio(sc.secret, twilioBase, body)), body
	}
	return sc.verifier(sc.secret).WithClock(clock), sc.sign(sc.secret, body), body
}

// rawPrimitive returns what a receiver without a library computes for the
// scheme over the same bytes: its MAC, Ed25519 or ECDSA verification of
// the signed message, given the signature.
func rawPrimitive(tb testing.TB, sc scheme, h http.Header, body []byte) func() {
	msg := body
	if sc.name == "twilio" { // the URL and the sorted parameters
		vals, _ := url.ParseQuery(string(body))
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := twilioBase
		for _, k := range keys {
			s += k + vals[k][0]
		}
		msg = []byte(s)
	}
	switch sc.prim {
	case "ed25519":
		priv := edKeys[sc.secret]
		sig := ed25519.Sign(priv, msg)
		pub := priv.Public().(ed25519.PublicKey)
		return func() {
			if !ed25519.Verify(pub, msg, sig) {
				tb.Fatal("mismatch")
			}
		}
	case "ecdsa-p256":
		priv := ecKeys[sc.secret]
		sum := sha256.Sum256(msg)
		sig, _ := ecdsa.SignASN1(rand.Reader, priv, sum[:])
		return func() {
			sum := sha256.Sum256(msg)
			if !ecdsa.VerifyASN1(&priv.PublicKey, sum[:], sig) {
				tb.Fatal("mismatch")
			}
		}
	}
	hf := sha256.New
	switch sc.prim {
	case "hmac-sha1":
		hf = sha1.New
	case "hmac-sha512":
		hf = sha512.New
	}
	key := []byte(sc.secret)
	m := hmac.New(hf, key)
	m.Write(msg)
	want := m.Sum(nil)
	return func() {
		m := hmac.New(hf, key)
		m.Write(msg)
		if !hmac.Equal(m.Sum(nil), want) {
			tb.Fatal("mismatch")
		}
	}
}

// TestVerifyAllocations holds what the benchmarks report: verifying a
// 1 KiB request allocates at most the event's id and type strings — 2 —
// in every scheme, and SendGrid at most 2 beyond what ecdsa.VerifyASN1
// allocates itself. (A signature set that escaped to the heap made Stripe
// and Standard Webhooks allocate 3 and 4.) Counted, not timed.
func TestVerifyAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items at random")
	}
	for _, sc := range schemes() {
		v, h, body := benchRequest(sc, 1<<10)
		req := &webhook.Request{Method: http.MethodPost, URL: "https://example.com/hook", Header: h, Body: body}
		got := testing.AllocsPerRun(100, func() {
			if _, err := v.VerifyRequest(req); err != nil {
				t.Fatal(err)
			}
		})
		limit := 2.0
		if sc.prim == "ecdsa-p256" {
			limit += testing.AllocsPerRun(100, rawPrimitive(t, sc, h, body))
		}
		if got > limit {
			t.Errorf("%s: %v allocations a verify, want at most %v", sc.name, got, limit)
		}
	}
}
