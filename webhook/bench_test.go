package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
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
				v := sc.verifier(sc.secret).WithClock(clock)
				body := bodyFor(sc.name, size)
				h := sc.sign(sc.secret, body)
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

// BenchmarkVerifyRatio reports each scheme's Verify time as a ratio to the
// raw HMAC over the same number of bytes, measuring the two interleaved in
// batches so that the noise of a shared machine falls on both alike:
//
//	go test ./webhook -run x -bench VerifyRatio -benchtime 20000x
func BenchmarkVerifyRatio(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, sc := range schemes() {
			b.Run(fmt.Sprintf("size=%dKiB/scheme=%s", size>>10, sc.name), func(b *testing.B) {
				v := sc.verifier(sc.secret).WithClock(clock)
				body := bodyFor(sc.name, size)
				h := sc.sign(sc.secret, body)
				hf, key := sha256.New, []byte(sc.secret)
				if sc.name == "hmac" {
					hf = sha512.New
				}
				raw := func() {
					m := hmac.New(hf, key)
					m.Write(body)
					hmac.Equal(m.Sum(nil), key)
				}
				const batch = 100
				var rawT, verT time.Duration
				for done := 0; done < b.N; done += batch {
					t0 := time.Now()
					for range batch {
						raw()
					}
					t1 := time.Now()
					for range batch {
						if _, err := v.Verify(h, body); err != nil {
							b.Fatal(err)
						}
					}
					rawT += t1.Sub(t0)
					verT += time.Since(t1)
				}
				b.ReportMetric(float64(verT)/float64(rawT), "×raw-hmac")
				b.ReportMetric(float64(verT.Nanoseconds())/float64(b.N), "verify-ns/op")
			})
		}
	}
}
