package webhook

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Notification-only providers: their webhooks say only "something
// changed" (Dropbox: which accounts; Google: which channel), and the
// receiver is to fetch the changes with a cursor. A handler with one of
// these schemes stores no event: it verifies the notification, answers at
// once and calls the function given with [WithTrigger], the paired
// poller's [poller.Poller.Trigger], which polls no sooner than its
// minimum gap after the last poll, however many notifications come.
//
// [poller.Poller.Trigger]: https://pkg.go.dev/github.com/intakehq/intake/poller#Poller.Trigger

// WithTrigger sets the function called for every verified notification
// of a notification-only scheme ([Dropbox], [GoogleChannel]) instead of
// storing an event: give it the paired poller's Trigger. It must not
// block. [New] panics on a notification-only scheme without one, and on
// any other scheme with one: to poll after a stored event, use
// [OnAccepted]. Defaults to none.
func WithTrigger(fn func()) Option { return func(h *Handler) { h.trigger = fn } }

// Dropbox returns the verifier of Dropbox's webhooks, given the app
// secret(s). A notification only names the accounts with changes
// ({"list_folder": {"accounts": [...]}}): the handler stores nothing and
// calls its trigger ([WithTrigger]) for the poller that lists the changes
// with its cursor.
//
// X-Dropbox-Signature is the hex HMAC-SHA256 of the body under the app
// secret; Dropbox signs no timestamp (a replayed notification triggers a
// poll, nothing more). Dropbox checks the endpoint with a GET carrying a
// challenge query parameter, which the handler echoes as text/plain with
// X-Content-Type-Options: nosniff; that GET is unsigned, and stores and
// triggers nothing.
func Dropbox(appSecrets ...string) *Scheme {
	s := newRequestScheme("dropbox", appSecrets, nil, nil, verifyDropbox)
	s.get = true
	s.notifyOnly = true
	s.headers = []string{"X-Dropbox-Signature"}
	return s
}

func verifyDropbox(s *Scheme, r *Request) (event.Event, error) {
	if r.Method == http.MethodGet {
		raw, ok := queryParam(r.URL, "challenge")
		if !ok {
			return event.Event{}, malformed("a GET without a challenge")
		}
		challenge, err := url.QueryUnescape(raw)
		if err != nil || challenge == "" {
			return event.Event{}, malformed("challenge is not a query value")
		}
		return event.Event{}, textReply(challenge)
	}
	hv := first(r.Header, "X-Dropbox-Signature")
	if hv == "" {
		return event.Event{}, missingHeader("X-Dropbox-Signature")
	}
	var buf sigBuf
	sig, valid := decodeHex(&buf, hv)
	if !valid {
		return event.Event{}, ErrMalformedSignature
	}
	if !verifyAny(s.keys, sig, r.Body) {
		return event.Event{}, ErrSignatureMismatch
	}
	return event.Event{Type: "notification", Payload: r.Body}, nil
}

// SignDropbox returns the X-Dropbox-Signature header of body, signed with
// the app secret.
func SignDropbox(appSecret string, body []byte) http.Header {
	h := http.Header{}
	h.Set("X-Dropbox-Signature", hex.EncodeToString(newMACKey([]byte(appSecret), nil).sign(nil, body)))
	return h
}

// GoogleChannel returns the verifier of Google's push notification
// channels (Drive, Calendar, Gmail through watch calls), given the
// token(s) set on the channels when they were made. A notification has no
// body: it says which channel and resource changed, and the receiver
// lists the changes (Drive's changes.list with its page token, Calendar's
// sync token). The handler stores nothing and calls its trigger
// ([WithTrigger]).
//
// Google signs nothing: the proof is X-Goog-Channel-Token, a secret you
// chose, compared in constant time (use HTTPS). The first message of a
// channel, X-Goog-Resource-State: sync, says the channel works: it is
// answered 200 and triggers nothing. Messages are numbered
// (X-Goog-Message-Number) and may come twice or out of order; a trigger
// is idempotent, so neither matters here.
func GoogleChannel(tokens ...string) *Scheme {
	s := newRequestScheme("google-channel", nil, nil, nil, verifyGoogleChannel)
	s.bad = nil
	s.addTokens(tokens)
	s.notifyOnly = true
	s.headers = []string{"X-Goog-Channel-Id", "X-Goog-Channel-Token", "X-Goog-Resource-State", "X-Goog-Resource-Id", "X-Goog-Resource-Uri", "X-Goog-Message-Number", "X-Goog-Changed"}
	return s
}

func verifyGoogleChannel(s *Scheme, r *Request) (event.Event, error) {
	if first(r.Header, "X-Goog-Channel-Id") == "" {
		return event.Event{}, missingHeader("X-Goog-Channel-Id")
	}
	token := first(r.Header, "X-Goog-Channel-Token")
	if token == "" {
		return event.Event{}, missingHeader("X-Goog-Channel-Token")
	}
	if !s.tokenMatches(token) {
		return event.Event{}, ErrSignatureMismatch
	}
	state := first(r.Header, "X-Goog-Resource-State")
	switch state {
	case "":
		return event.Event{}, missingHeader("X-Goog-Resource-State")
	case "sync":
		return event.Event{}, &Reply{Status: http.StatusOK} // the channel works: nothing changed
	}
	return event.Event{Type: state, Payload: r.Body}, nil
}

// Box returns the verifier of Box's V2 webhooks, given the primary and
// secondary signature keys of the app (either may be empty when only one
// is configured, not both). Box sends the whole event (trigger and source
// object), stored as any other; the event's ID is the body's "id", which
// Box keeps when it retries (BOX-DELIVERY-ID changes), its Type the
// "trigger".
//
// BOX-SIGNATURE-PRIMARY (with the primary key) and BOX-SIGNATURE-SECONDARY
// (with the secondary) are the base64 HMAC-SHA256 of the body's bytes
// followed by the bytes of BOX-DELIVERY-TIMESTAMP, an RFC 3339 time that
// must be no more than ten minutes old (the scheme's tolerance); one
// valid signature is enough, so that keys rotate one at a time.
func Box(primaryKey, secondaryKey string) *Scheme {
	s := newScheme("box", nil, nil, nil, verifyBox) // no shared key list: a key per header
	if primaryKey != "" || secondaryKey != "" {
		s.bad = nil
	}
	if primaryKey != "" {
		s.boxKeys[0] = newMACKey([]byte(primaryKey), nil)
	}
	if secondaryKey != "" {
		s.boxKeys[1] = newMACKey([]byte(secondaryKey), nil)
	}
	s.tolerance = boxTolerance
	s.headers = []string{"Box-Signature-Primary", "Box-Signature-Secondary", "Box-Delivery-Timestamp", "Box-Delivery-Id", "Box-Signature-Version", "Box-Signature-Algorithm"}
	return s
}

// boxTolerance is how old Box's delivery timestamp may be.
const boxTolerance = 10 * time.Minute

func verifyBox(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	ts := first(h, "Box-Delivery-Timestamp")
	if ts == "" {
		return event.Event{}, missingHeader("BOX-DELIVERY-TIMESTAMP")
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return event.Event{}, malformed("BOX-DELIVERY-TIMESTAMP is not an RFC 3339 time")
	}
	if age := s.now().Sub(at); age > s.tolerance || age < -s.tolerance {
		return event.Event{}, ErrTimestamp
	}
	ok, seen := false, false
	for i, name := range [2]string{"Box-Signature-Primary", "Box-Signature-Secondary"} {
		hv := first(h, name)
		if hv == "" || s.boxKeys[i] == nil {
			continue
		}
		seen = true
		var buf sigBuf
		if sig, valid := decodeBase64(buf[:], hv); valid && boxVerify(s.boxKeys[i], sig, body, ts) {
			ok = true
		}
	}
	switch {
	case !seen:
		return event.Event{}, missingHeader("BOX-SIGNATURE-PRIMARY")
	case !ok:
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{Payload: body}
	err = jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			e.ID, _ = jsonscan.String(v)
		case "trigger":
			e.Type, _ = jsonscan.String(v)
		case "created_at":
			if t, ok := jsonscan.String(v); ok {
				e.Time, _ = time.Parse(time.RFC3339, t)
			}
		}
		return false
	})
	switch {
	case err != nil:
		return event.Event{}, malformed("body is not a JSON object")
	case e.ID == "":
		return event.Event{}, malformed(`body has no "id"`)
	}
	return e, nil
}

// boxVerify reports, in constant time, whether sig is the MAC under k of
// body followed by the timestamp's bytes.
func boxVerify(k *macKey, sig, body []byte, ts string) bool {
	st := k.pool.Get().(*macState)
	defer k.pool.Put(st)
	st.h.Reset()
	st.h.Write(body)
	st.scratch = append(st.scratch[:0], ts...)
	st.h.Write(st.scratch)
	return subtle.ConstantTimeCompare(st.h.Sum(st.sum[:0]), sig) == 1
}

// SignBox returns Box's delivery headers for body, sent at, signed with
// the primary key (and the secondary when not empty).
func SignBox(primaryKey, secondaryKey string, body []byte, at time.Time) http.Header {
	ts := at.UTC().Format(time.RFC3339)
	sign := func(key string) string {
		return base64.StdEncoding.EncodeToString(newMACKey([]byte(key), nil).sign(nil, append(append([]byte(nil), body...), ts...)))
	}
	h := http.Header{}
	h.Set("BOX-DELIVERY-TIMESTAMP", ts)
	h.Set("BOX-DELIVERY-ID", strconv.FormatInt(at.UnixNano(), 36))
	h.Set("BOX-SIGNATURE-VERSION", "1")
	h.Set("BOX-SIGNATURE-ALGORITHM", "HmacSHA256")
	h.Set("BOX-SIGNATURE-PRIMARY", sign(primaryKey))
	if secondaryKey != "" {
		h.Set("BOX-SIGNATURE-SECONDARY", sign(secondaryKey))
	}
	return h
}
