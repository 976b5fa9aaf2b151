package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/intakehq/intake/webhook"
)

// stripeLikeBody returns a JSON body of about n bytes shaped like a
// provider's event: id first, a large data object, type last.
func stripeLikeBody(n int) []byte {
	head := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2022-11-15","created":1700000000,"data":{"object":{"description":"`
	tail := `"}},"livemode":false,"pending_webhooks":1,"type":"invoice.paid","event_id":"Ev1","event_time":1700000000}`
	pad := max(0, n-len(head)-len(tail))
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// BenchmarkVerify compares each scheme's Verify with a raw HMAC over the
// same bytes in the same run: what a receiver without a library computes
// (hmac.New, Write, Sum, hmac.Equal). Compare ns/op within a size:
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

var _ http.Header
