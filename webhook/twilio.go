package webhook

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/intakehq/intake/event"
)

// Twilio returns the verifier of Twilio's request signatures, given the
// account's auth token(s).
//
// X-Twilio-Signature is the base64 HMAC-SHA1, under the auth token, of the
// URL Twilio requested followed, for a form-encoded POST, by every
// parameter's name and value in the order of the names (then of the
// values). For a JSON body Twilio adds a bodySHA256 query parameter, the
// hex SHA-256 of the body, and signs the URL alone: the body is checked
// against it. The URL is the one Twilio was given, with its query: behind
// a proxy, pin it with [Scheme.WithPublicURL]. As Twilio's own libraries
// do, the URL is also tried with its default port added or removed. Twilio
// signs no timestamp. The event's ID is I-Twilio-Idempotency-Token (the
// same on a retry), else derived from the content.
func Twilio(authTokens ...string) *Scheme {
	s := newRequestScheme("twilio", authTokens, nil, sha1.New, verifyTwilio)
	s.headers = []string{"X-Twilio-Signature", "I-Twilio-Idempotency-Token"}
	return s
}

func verifyTwilio(s *Scheme, r *Request) (event.Event, error) {
	var buf sigBuf
	sig, err := base64Header(&buf, r.Header, "X-Twilio-Signature")
	if err != nil {
		return event.Event{}, err
	}
	u, err := s.signedURL(r)
	if err != nil {
		return event.Event{}, err
	}
	f := formPool.Get().(*form)
	defer f.release()
	if want := queryValue(u, "bodySHA256"); want != "" {
		// A JSON (or any non-form) body: its hash is in the signed URL.
		var wantSum [sha256.Size]byte
		sum := sha256.Sum256(r.Body)
		if !decodeHexInto(wantSum[:], want) {
			return event.Event{}, ErrMalformedSignature
		}
		if subtle.ConstantTimeCompare(sum[:], wantSum[:]) != 1 {
			return event.Event{}, ErrSignatureMismatch
		}
	} else if !f.parse(r.Body) {
		return event.Event{}, malformed("body is not form-encoded and the URL has no bodySHA256")
	}
	if !twilioVerify(s.keys, sig, u, f) && !twilioVerify(s.keys, sig, togglePort(u), f) {
		return event.Event{}, ErrSignatureMismatch
	}
	return event.Event{ID: first(r.Header, "I-Twilio-Idempotency-Token"), Payload: r.Body}, nil
}

// twilioVerify reports whether sig is the MAC, under any key, of u and
// the sorted parameters of f.
func twilioVerify(keys []*macKey, sig []byte, u string, f *form) bool {
	if u == "" {
		return false
	}
	ok := 0
	for _, k := range keys {
		st := k.pool.Get().(*macState)
		ok |= subtle.ConstantTimeCompare(f.mac(st, u, true), sig)
		if f.dups {
			// A signer that keeps repeated values (as twilio-go's
			// validator does) signs them all.
			ok |= subtle.ConstantTimeCompare(f.mac(st, u, false), sig)
		}
		k.pool.Put(st)
	}
	return ok == 1
}

// togglePort returns u with its default port added when it has none, or
// removed when it has one; "" when u cannot be parsed.
func togglePort(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return ""
	}
	if p.Port() != "" {
		p.Host = p.Hostname()
		if strings.IndexByte(p.Host, ':') >= 0 {
			p.Host = "[" + p.Host + "]"
		}
		return p.String()
	}
	port := ":80"
	if p.Scheme == "https" {
		port = ":443"
	}
	p.Host += port
	return p.String()
}

// form is a parsed form-encoded body: its names and values, unescaped
// into one buffer, in the order Twilio signs them. Pooled: parsing and
// signing a form allocates nothing.
type form struct {
	buf   []byte
	pairs []formPair
	dups  bool // a name appears more than once with one value
}

type formPair struct{ k0, k1, v0, v1 int }

var formPool = sync.Pool{New: func() any { return &form{buf: make([]byte, 0, 1024), pairs: make([]formPair, 0, 32)} }}

func (f *form) release() {
	if cap(f.buf) > maxPooledMsg || cap(f.pairs) > 1024 {
		return
	}
	f.buf, f.pairs, f.dups = f.buf[:0], f.pairs[:0], false
	formPool.Put(f)
}

// parse reads a form-encoded body, reporting false when an escape is
// invalid. It sorts the parameters by name, then value, and notes whether
// a name repeats a value: Twilio's SDKs (twilio-php, twilio-node) sign
// each name's distinct values.
func (f *form) parse(body []byte) bool {
	u := unescaper{s: body, pct: -1, plus: -1}
	for at := 0; at < len(body); {
		end := len(body)
		if i := bytes.IndexByte(body[at:], '&'); i >= 0 {
			end = at + i
		}
		if end > at {
			eq := end
			if i := bytes.IndexByte(body[at:end], '='); i >= 0 {
				eq = at + i
			}
			var p formPair
			var ok bool
			p.k0 = len(f.buf)
			if f.buf, ok = u.append(f.buf, at, eq); !ok {
				return false
			}
			p.k1, p.v0 = len(f.buf), len(f.buf)
			if eq < end {
				if f.buf, ok = u.append(f.buf, eq+1, end); !ok {
					return false
				}
			}
			p.v1 = len(f.buf)
			f.pairs = append(f.pairs, p)
		}
		at = end + 1
	}
	buf := f.buf
	slices.SortFunc(f.pairs, func(a, b formPair) int {
		if c := bytes.Compare(buf[a.k0:a.k1], buf[b.k0:b.k1]); c != 0 {
			return c
		}
		return bytes.Compare(buf[a.v0:a.v1], buf[b.v0:b.v1])
	})
	for i := 1; i < len(f.pairs) && !f.dups; i++ {
		f.dups = f.same(f.pairs[i-1], f.pairs[i])
	}
	return true
}

// same reports whether two pairs have the same name and value.
func (f *form) same(a, b formPair) bool {
	return bytes.Equal(f.buf[a.k0:a.k1], f.buf[b.k0:b.k1]) && bytes.Equal(f.buf[a.v0:a.v1], f.buf[b.v0:b.v1])
}

// unescaper form-unescapes ranges of one body: "+" is a space, "%XX" a
// byte. It keeps the position of the next "%" and "+" in the whole body,
// found with bytes.IndexByte and searched for again only once passed, so
// that the runs between them are appended at once and the work stays
// linear in the body, however many of either it holds.
type unescaper struct {
	s         []byte
	pct, plus int // next "%" and "+" at or after the last range's start; len(s) if none
}

func (u *unescaper) next(c byte, from int) int {
	if i := bytes.IndexByte(u.s[from:], c); i >= 0 {
		return from + i
	}
	return len(u.s)
}

// append appends the unescaped u.s[a:b] to dst, reporting false for an
// invalid or cut escape.
func (u *unescaper) append(dst []byte, a, b int) ([]byte, bool) {
	if u.pct < a {
		u.pct = u.next('%', a)
	}
	if u.plus < a {
		u.plus = u.next('+', a)
	}
	for a < b {
		i := min(u.pct, u.plus, b)
		dst = append(dst, u.s[a:i]...)
		if i == b {
			break
		}
		if i == u.plus {
			dst = append(dst, ' ')
			a = i + 1
			u.plus = u.next('+', a)
			continue
		}
		if i+2 >= b {
			return dst, false
		}
		hi, ok1 := unhex(u.s[i+1])
		lo, ok2 := unhex(u.s[i+2])
		if !ok1 || !ok2 {
			return dst, false
		}
		dst = append(dst, hi<<4|lo)
		a = i + 3
		u.pct = u.next('%', a)
	}
	return dst, true
}

// mac computes the MAC of u and the parameters into st.sum, written to
// the hash in one piece: many small writes cost more than the copy. With
// distinct, a name's repeated value is signed once.
func (f *form) mac(st *macState, u string, distinct bool) []byte {
	st.h.Reset()
	st.scratch = append(st.scratch[:0], u...)
	for i, p := range f.pairs {
		if distinct && i > 0 && f.same(f.pairs[i-1], p) {
			continue
		}
		st.scratch = append(st.scratch, f.buf[p.k0:p.k1]...)
		st.scratch = append(st.scratch, f.buf[p.v0:p.v1]...)
	}
	st.h.Write(st.scratch)
	if cap(st.scratch) > maxPooledMsg {
		st.scratch = nil
	}
	return st.h.Sum(st.sum[:0])
}

// SignTwilio returns the X-Twilio-Signature header's value for a request
// to u with body, signed with authToken: over u alone when u has a
// bodySHA256 parameter (a JSON body), else over u and the form-encoded
// body's parameters. It returns "" for a form body that does not parse.
func SignTwilio(authToken, u string, body []byte) string {
	f := formPool.Get().(*form)
	defer f.release()
	if queryValue(u, "bodySHA256") == "" && !f.parse(body) {
		return ""
	}
	k := newMACKey([]byte(authToken), sha1.New)
	st := k.pool.Get().(*macState)
	return base64.StdEncoding.EncodeToString(f.mac(st, u, true))
}

// TwilioBodyURL returns u with the bodySHA256 parameter Twilio adds for a
// JSON body.
func TwilioBodyURL(u string, body []byte) string {
	sum := sha256.Sum256(body)
	sep := "?"
	if strings.IndexByte(u, '?') >= 0 {
		sep = "&"
	}
	return u + sep + "bodySHA256=" + hex.EncodeToString(sum[:])
}
