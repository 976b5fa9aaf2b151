package sdktest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	paddle "github.com/PaddleHQ/paddle-go-sdk/v4"
	"github.com/PagerDuty/go-pagerduty/webhookv3"
	"github.com/mailgun/mailgun-go/v4"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"
	twilio "github.com/twilio/twilio-go/client"

	"github.com/intakehq/intake/webhook"
)

// bodies are what each case signs: JSON of a few sizes, with the fields
// the schemes read, and bytes that JSON parsers would choke on.
func bodies() [][]byte {
	var out [][]byte
	for i, n := range []int{0, 10, 1000, 100000} {
		out = append(out, []byte(fmt.Sprintf(`{"id":"evt_%d","event_id":"evt_%d","type":"t.%d","event":{"id":"e%d","event_type":"x"},"pad":"%s"}`,
			i, i, i, i, bytes.Repeat([]byte("é<>&"), n/4))))
	}
	return out
}

func TestStripeSDKSigns(t *testing.T) {
	const secret = "whsec_test_sdk"
	for _, b := range bodies() {
		p := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: b, Secret: secret})
		h := http.Header{}
		h.Set("Stripe-Signature", p.Header)
		if _, err := webhook.Stripe(secret).Verify(h, b); err != nil {
			t.Fatalf("stripe-go's signature refused: %v", err)
		}
		// And intake's signature is what stripe-go computes.
		if _, err := stripewebhook.ConstructEventWithOptions(b, webhook.SignStripe(secret, time.Now(), b).Get("Stripe-Signature"), secret,
			stripewebhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil && !isJSONError(err) {
			t.Fatalf("stripe-go refused intake's signature: %v", err)
		}
	}
}

// isJSONError reports an error of stripe-go's event decoding, after the
// signature verified (the test bodies are not Stripe events).
func isJSONError(err error) bool {
	return err != stripewebhook.ErrInvalidHeader && err != stripewebhook.ErrNoValidSignature &&
		err != stripewebhook.ErrNotSigned && err != stripewebhook.ErrTooOld
}

func TestStandardWebhooksSDKSigns(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a Standard Webhooks secret of 32"))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies() {
		id, ts := fmt.Sprintf("msg_%d", i), time.Now()
		sig, err := wh.Sign(id, ts, b)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("Webhook-Id", id)
		h.Set("Webhook-Timestamp", fmt.Sprint(ts.Unix()))
		h.Set("Webhook-Signature", sig)
		if _, err := webhook.StandardWebhooks(secret).Verify(h, b); err != nil {
			t.Fatalf("the Standard Webhooks library's signature refused: %v", err)
		}
		ours, err := webhook.SignStandardWebhooks(secret, id, ts, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(b, ours); err != nil {
			t.Fatalf("the Standard Webhooks library refused intake's signature: %v", err)
		}
	}
}

func TestTwilioSDKValidates(t *testing.T) {
	const token = "twilio-auth-token"
	v := twilio.NewRequestValidator(token)
	for _, u := range []string{"https://example.com/sms", "https://example.com:8443/sms?account=a%20b", "http://example.com/voice?x=1&y=2"} {
		// A form body: one value per name, as twilio-go reads it.
		form := url.Values{"From": {"+15551234567"}, "Body": {"café & more = 100%"}, "MessageSid": {"SM1"}, "To": {"+15557654321"}}
		b := []byte(form.Encode())
		sig := webhook.SignTwilio(token, u, b)
		if !v.ValidateBody(u, b, sig) {
			t.Fatalf("twilio-go refused intake's form signature for %s", u)
		}
		if _, err := webhook.Twilio(token).VerifyRequest(&webhook.Request{Method: http.MethodPost, URL: u, Header: header("X-Twilio-Signature", sig), Body: b}); err != nil {
			t.Fatal(err)
		}
		// A JSON body: bodySHA256 in the URL.
		for _, b := range bodies() {
			ju := webhook.TwilioBodyURL(u, b)
			sig := webhook.SignTwilio(token, ju, b)
			if !v.ValidateBody(ju, b, sig) {
				t.Fatalf("twilio-go refused intake's JSON signature for %s", ju)
			}
		}
	}
}

func TestSendGridSDKValidates(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	key := base64.StdEncoding.EncodeToString(der)
	pub, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies() {
		h, err := webhook.SignSendGrid(priv, time.Now(), b)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := eventwebhook.VerifySignature(pub, b, h.Get(eventwebhook.VerificationHTTPHeader), h.Get(eventwebhook.TimestampHTTPHeader))
		if !ok || err != nil {
			t.Fatalf("sendgrid-go refused intake's signature: %v", err)
		}
		if _, err := webhook.SendGrid(key).Verify(h, b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPaddleSDKValidates(t *testing.T) {
	const secret = "pdl_ntfset_01test_secret"
	v := paddle.NewWebhookVerifier(secret)
	for _, b := range bodies() {
		sig := webhook.SignPaddle(secret, time.Now(), b)
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		r.Header.Set("Paddle-Signature", sig)
		if ok, err := v.Verify(r); !ok || err != nil {
			t.Fatalf("paddle-go-sdk refused intake's signature: %v", err)
		}
	}
}

func TestPagerDutySDKValidates(t *testing.T) {
	const secret = "pagerduty-webhook-secret"
	for _, b := range bodies() {
		if len(b) == 0 {
			continue
		}
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		r.Header.Set("X-PagerDuty-Signature", webhook.SignPagerDuty(secret, b))
		if err := webhookv3.VerifySignature(r, secret); err != nil {
			t.Fatalf("go-pagerduty refused intake's signature: %v", err)
		}
	}
}

func TestMailgunSDKValidates(t *testing.T) {
	const key = "mailgun-signing-key"
	mg := mailgun.NewMailgun("example.com", "api-key")
	mg.SetWebhookSigningKey(key)
	for i := range 20 {
		ts, token := fmt.Sprint(time.Now().Unix()), fmt.Sprintf("token-%d-%x", i, i*7919)
		ok, err := mg.VerifyWebhookSignature(mailgun.Signature{TimeStamp: ts, Token: token, Signature: webhook.MailgunSignature(key, ts, token)})
		if !ok || err != nil {
			t.Fatalf("mailgun-go refused intake's signature: %v", err)
		}
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}
