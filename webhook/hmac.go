package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
)

// Encoding is how a signature is written in its header.
type Encoding uint8

const (
	Hex    Encoding = iota // lower- or upper-case hex
	Base64                 // standard base64 with padding
)

// Content is what a generic HMAC signature covers.
type Content uint8

const (
	// Body signs the raw body alone.
	Body Content = iota
	// TimestampDotBody signs the timestamp header's value, ".", and the body.
	TimestampDotBody
)

// HMACConfig describes a provider's HMAC signature scheme for [HMAC].
type HMACConfig struct {
	Secrets  []string         // required; any one verifying is enough
	Header   string           // header holding the signature; required
	Prefix   string           // stripped from the header value, e.g. "sha256="; required if set
	Encoding Encoding         // of the signature; defaults to Hex
	Hash     func() hash.Hash // defaults to sha256.New
	Content  Content          // what is signed; defaults to Body

	// TimestampHeader holds the signing time in unix seconds. When set,
	// requests outside the tolerance are refused.
	TimestampHeader string
	// IDHeader holds the event id. When empty, the id is derived from the
	// body's content.
	IDHeader string
	// TypeHeader holds the event type; optional.
	TypeHeader string
}

// HMAC returns a verifier for a provider whose scheme the other
// constructors do not cover. A configuration without Header, or with
// TimestampDotBody but no TimestampHeader, refuses every request.
func HMAC(cfg HMACConfig) *Scheme {
	cfg.Header = http.CanonicalHeaderKey(cfg.Header)
	cfg.TimestampHeader = http.CanonicalHeaderKey(cfg.TimestampHeader)
	cfg.IDHeader = http.CanonicalHeaderKey(cfg.IDHeader)
	cfg.TypeHeader = http.CanonicalHeaderKey(cfg.TypeHeader)
	s := newScheme("hmac", cfg.Secrets, nil, cfg.Hash, func(s *Scheme, h http.Header, body []byte) (event.Event, error) {
		return verifyHMAC(s, &cfg, h, body)
	})
	for _, h := range []string{cfg.Header, cfg.TimestampHeader, cfg.IDHeader, cfg.TypeHeader} {
		if h != "" {
			s.headers = append(s.headers, h)
		}
	}
	if cfg.Header == "" || (cfg.Content == TimestampDotBody && cfg.TimestampHeader == "") {
		s.bad = errors.Join(ErrNoSecret, errors.New("webhook: HMAC config needs Header, and TimestampHeader for TimestampDotBody"))
	}
	return s
}

func verifyHMAC(s *Scheme, cfg *HMACConfig, h http.Header, body []byte) (event.Event, error) {
	hv := first(h, cfg.Header)
	if hv == "" {
		return event.Event{}, missingHeader(cfg.Header)
	}
	value, ok := strings.CutPrefix(hv, cfg.Prefix)
	if !ok {
		return event.Event{}, ErrMalformedSignature
	}
	var e event.Event
	var ts string
	if cfg.TimestampHeader != "" {
		ts = first(h, cfg.TimestampHeader)
		t, err := s.checkTime(ts)
		if err != nil {
			return event.Event{}, err
		}
		e.Time = t
	}
	var buf sigBuf
	var sig []byte
	if cfg.Encoding == Base64 {
		sig, ok = decodeBase64(buf[:], value)
	} else {
		sig, ok = decodeHex(&buf, value)
	}
	if !ok {
		return event.Event{}, ErrMalformedSignature
	}
	if cfg.Content == TimestampDotBody {
		ok = verifyAny(s.keys, sig, body, ts, ".")
	} else {
		ok = verifyAny(s.keys, sig, body)
	}
	if !ok {
		return event.Event{}, ErrSignatureMismatch
	}
	e.Payload = body
	if cfg.IDHeader != "" {
		if e.ID = first(h, cfg.IDHeader); e.ID == "" {
			return event.Event{}, malformed("missing " + cfg.IDHeader + " header")
		}
	}
	if cfg.TypeHeader != "" {
		e.Type = first(h, cfg.TypeHeader)
	}
	if e.ID == "" {
		e.ID = event.ContentID(e)
	}
	return e, nil
}

// SignHMAC returns the headers cfg describes for body, signed with secret
// at ts, with id and eventType in cfg's id and type headers when it names
// them.
func SignHMAC(cfg HMACConfig, secret, id, eventType string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	k := newMACKey([]byte(secret), cfg.Hash)
	var mac []byte
	if cfg.Content == TimestampDotBody {
		t := strconv.FormatInt(ts.Unix(), 10)
		mac = k.sign(nil, body, t, ".")
	} else {
		mac = k.sign(nil, body)
	}
	if cfg.TimestampHeader != "" {
		h.Set(cfg.TimestampHeader, strconv.FormatInt(ts.Unix(), 10))
	}
	sig := hex.EncodeToString(mac)
	if cfg.Encoding == Base64 {
		sig = base64.StdEncoding.EncodeToString(mac)
	}
	h.Set(cfg.Header, cfg.Prefix+sig)
	if cfg.IDHeader != "" {
		h.Set(cfg.IDHeader, id)
	}
	if cfg.TypeHeader != "" {
		h.Set(cfg.TypeHeader, eventType)
	}
	return h
}
