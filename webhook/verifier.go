package webhook

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/intakehq/intake/event"
)

// Verifier authenticates a webhook request and extracts its event.
//
// Verify gets the request's headers and its raw body, exactly as received.
// It returns the event with ID, Type, Time and Payload filled in (the
// handler fills Source, Via and Received), or an error that wraps one of
// the package's sentinels. It must check the signature before it parses
// anything, compare in constant time, and never put a secret or a computed
// signature in an error. It must be safe for concurrent use.
type Verifier interface {
	Verify(h http.Header, body []byte) (event.Event, error)
}

// VerifierFunc adapts a function to a [Verifier].
type VerifierFunc func(h http.Header, body []byte) (event.Event, error)

// Verify calls f(h, body).
func (f VerifierFunc) Verify(h http.Header, body []byte) (event.Event, error) { return f(h, body) }

// Errors a Verifier returns, wrapped. The handler answers 401 for the
// signature errors and 400 for [ErrMalformed].
var (
	ErrNoSecret           = errors.New("webhook: no secret configured")
	ErrMissingSignature   = errors.New("webhook: missing signature header")
	ErrMalformedSignature = errors.New("webhook: malformed signature header")
	ErrSignatureMismatch  = errors.New("webhook: signature mismatch")
	ErrTimestamp          = errors.New("webhook: timestamp outside tolerance")
	ErrMalformed          = errors.New("webhook: malformed request")
)

// missingHeader is ErrMissingSignature naming the header.
func missingHeader(name string) error {
	return fmt.Errorf("%w %s", ErrMissingSignature, name)
}

// malformed is ErrMalformed saying what is wrong.
func malformed(what string) error {
	return fmt.Errorf("%w: %s", ErrMalformed, what)
}

// Reply is an error a Verifier returns to answer a verified request
// directly, without producing an event: Slack's url_verification challenge.
type Reply struct {
	Status      int
	ContentType string
	Body        []byte
}

func (r *Reply) Error() string { return "webhook: direct reply " + strconv.Itoa(r.Status) }

// DefaultTolerance is how far a signed timestamp may be from now, in
// either direction, for the schemes that sign one.
const DefaultTolerance = 5 * time.Minute

// Scheme is a built-in [Verifier]: one provider's signature scheme with its
// secrets, tolerance and clock. Build one with its provider's constructor
// (twenty-three: [StandardWebhooks], [Stripe], [GitHub], [Shopify],
// [Slack], [Discord], [SendGrid], [Meta], [Zoom], [Twitch],
// [MicrosoftGraph], [Twilio], [Square], [Paddle], [PagerDuty], [Linear],
// [Intercom], [Bitbucket], [Mailgun], [GitLab], [Box], and the
// notification-only [Dropbox] and [GoogleChannel]) or with [HMAC] for any
// other sender; adjust it with [Scheme.WithTolerance] and
// [Scheme.WithClock], which return copies.
//
// Several secrets mean rotation: a signature made with any of them
// verifies. A Scheme with no secret, or with an empty one among them,
// refuses every request with [ErrNoSecret]. A Scheme is safe for
// concurrent use.
type Scheme struct {
	name string
	keys []*macKey
	bad  error // configuration error: every Verify fails with it, and New panics
	// guardDefault: the signature covers the body alone and bodies of one
	// type never repeat, so the handler's replay guard is on by default.
	guardDefault bool
	headers      []string // the request headers the scheme reads
	tolerance    time.Duration
	now          func() time.Time
	verify       func(s *Scheme, r *Request) (event.Event, error)
	verifyHB     func(s *Scheme, h http.Header, body []byte) (event.Event, error) // schemes that read the headers and body alone

	edKeys []ed25519.PublicKey // Ed25519 schemes: Discord, Standard Webhooks v1a
	ecKeys []*ecdsa.PublicKey  // ECDSA schemes: SendGrid
	tokens [][]byte            // compared in constant time: GitLab, Meta's verify token, Graph's clientState

	get       bool   // the provider sends a GET handshake: the handler accepts GET
	publicURL string // WithPublicURL: the URL the provider was given
	forwarded bool   // WithForwardedHeaders: trust X-Forwarded-Proto and -Host
	// ack, when set, is the answer to a stored (or duplicate) event in
	// place of the handler's 202 or 200: Discord's deferred responses.
	ack func(e event.Event) *Reply
	// notifyOnly: a verified request says only that something changed;
	// the handler triggers a poll (WithTrigger) instead of storing it.
	notifyOnly bool
	boxKeys    [2]*macKey // Box: the primary and secondary keys, each for its own header
}

func newScheme(name string, secrets []string, decode func(string) ([]byte, error), hf func() hash.Hash,
	verify func(*Scheme, http.Header, []byte) (event.Event, error)) *Scheme {
	s := newRequestScheme(name, secrets, decode, hf, nil)
	s.verifyHB = verify
	return s
}

// newRequestScheme is newScheme for a scheme that needs more of the
// request than its headers and body: its method, URL or query.
func newRequestScheme(name string, secrets []string, decode func(string) ([]byte, error), hf func() hash.Hash,
	verify func(*Scheme, *Request) (event.Event, error)) *Scheme {
	s := &Scheme{name: name, tolerance: DefaultTolerance, now: time.Now, verify: verify}
	if len(secrets) == 0 {
		s.bad = ErrNoSecret
	}
	for _, sec := range secrets {
		if sec == "" {
			s.bad = ErrNoSecret
			break
		}
		key := []byte(sec)
		if decode != nil {
			var err error
			if key, err = decode(sec); err != nil || len(key) == 0 {
				s.bad = errors.Join(ErrNoSecret, errors.New("webhook: "+name+" secret is not in the expected format"))
				break
			}
		}
		s.keys = append(s.keys, newMACKey(key, hf))
	}
	if s.bad != nil {
		s.keys = nil
	}
	return s
}

// Err returns why s can never verify a request (no secret, an empty one,
// one not in the provider's format), or nil when it is usable. [New]
// panics on such a scheme; a program that builds one from a command line
// or a configuration file checks Err first and reports it instead. The
// error wraps [ErrNoSecret] and never holds a secret.
func (s *Scheme) Err() error { return s.bad }

// Verify implements [Verifier]: it verifies a POST with these headers and
// body. Schemes that sign the URL (Twilio, Square) need it: they verify
// through [Scheme.VerifyRequest], which the handler calls, or through
// Verify when pinned with [Scheme.WithPublicURL].
func (s *Scheme) Verify(h http.Header, body []byte) (event.Event, error) {
	if s.bad != nil {
		return event.Event{}, s.bad
	}
	if s.verifyHB != nil {
		return s.verifyHB(s, h, body)
	}
	return s.verify(s, &Request{Method: http.MethodPost, Header: h, Body: body})
}

// VerifyRequest implements [RequestVerifier].
func (s *Scheme) VerifyRequest(r *Request) (event.Event, error) {
	if s.bad != nil {
		return event.Event{}, s.bad
	}
	if s.verifyHB != nil {
		return s.verifyHB(s, r.Header, r.Body)
	}
	return s.verify(s, r)
}

// Methods returns the HTTP methods the scheme's provider uses: POST, and
// GET for the providers whose handshake is a GET (Meta).
func (s *Scheme) Methods() []string {
	if s.get {
		return []string{http.MethodGet, http.MethodPost}
	}
	return []string{http.MethodPost}
}

// Name returns the scheme's name, such as "stripe".
func (s *Scheme) Name() string { return s.name }

// Headers returns the names of the request headers the scheme reads: its
// signature, id, timestamp and type headers.
func (s *Scheme) Headers() []string { return append([]string(nil), s.headers...) }

// WithTolerance returns a copy of s that accepts signed timestamps up to d
// away from now, in either direction. It has no effect on schemes that
// sign no timestamp. The default is [DefaultTolerance].
func (s *Scheme) WithTolerance(d time.Duration) *Scheme {
	c := *s
	c.tolerance = d
	return &c
}

// WithClock returns a copy of s that reads the time from now, for tests.
func (s *Scheme) WithClock(now func() time.Time) *Scheme {
	c := *s
	c.now = now
	return &c
}

// checkTime parses a decimal unix timestamp and checks it against the
// tolerance.
func (s *Scheme) checkTime(ts string) (time.Time, error) {
	if ts == "" || len(ts) > 12 {
		return time.Time{}, ErrMalformedSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, ErrMalformedSignature
	}
	return s.checkTimeAt(time.Unix(sec, 0))
}

// checkTimeAt checks a signed time against the tolerance.
func (s *Scheme) checkTimeAt(t time.Time) (time.Time, error) {
	if d := s.now().Sub(t); d > s.tolerance || d < -s.tolerance {
		return time.Time{}, ErrTimestamp
	}
	return t, nil
}

// macKey keeps keyed HMAC states for one secret in a pool, so that a
// verification allocates nothing and skips the key schedule.
type macKey struct {
	pool sync.Pool
}

type macState struct {
	h       hash.Hash
	scratch []byte
	sum     [sha512Size]byte
}

const sha512Size = 64

// sigBuf holds a decoded signature. It is larger than the largest MAC
// because base64 input of the largest accepted length can decode to a few
// bytes more.
type sigBuf [sha512Size + 8]byte

func newMACKey(key []byte, hf func() hash.Hash) *macKey {
	if hf == nil {
		hf = sha256.New
	}
	k := append([]byte(nil), key...)
	m := &macKey{}
	m.pool.New = func() any { return &macState{h: hmac.New(hf, k)} }
	return m
}

// maxSignatures is how many signature entries of one request a scheme
// tries: a real header has one, two while a secret rotates. Entries past
// it are not tried, so a header of thousands costs no more than eight.
const maxSignatures = 8

// sigSet holds up to maxSignatures decoded signatures of one request. It
// keeps lengths, not slices of its own buffers, so that it stays on the
// caller's stack.
type sigSet struct {
	bufs [maxSignatures]sigBuf
	lens [maxSignatures]uint8
	n    int
}

// addHex decodes a hex value into the set; it reports false when the
// value does not decode, or when the set is full and the value was not
// tried.
func (s *sigSet) addHex(value string) bool {
	if s.n == maxSignatures {
		return false
	}
	sig, ok := decodeHex(&s.bufs[s.n], value)
	return s.keep(len(sig), ok)
}

// addBase64 is addHex for a base64 value.
func (s *sigSet) addBase64(value string) bool {
	if s.n == maxSignatures {
		return false
	}
	sig, ok := decodeBase64(s.bufs[s.n][:], value)
	return s.keep(len(sig), ok)
}

func (s *sigSet) keep(n int, ok bool) bool {
	if ok {
		s.lens[s.n] = uint8(n)
		s.n++
	}
	return ok
}

func (s *sigSet) full() bool { return s.n == maxSignatures }

// verify reports whether any signature in the set is the MAC, under any
// key, of the concatenation of pre and body. The MAC is computed once per
// key, whatever the number of signatures.
func (s *sigSet) verify(keys []*macKey, body []byte, pre ...string) bool {
	if s.n == 0 {
		return false
	}
	ok := 0
	for _, k := range keys {
		st := k.pool.Get().(*macState)
		sum := st.mac(body, pre)
		for i := range s.n {
			ok |= subtle.ConstantTimeCompare(sum, s.bufs[i][:s.lens[i]])
		}
		k.pool.Put(st)
	}
	return ok == 1
}

// verifyAny reports whether sig is the MAC, under any key, of the
// concatenation of pre and body. It returns false for an empty sig.
func verifyAny(keys []*macKey, sig, body []byte, pre ...string) bool {
	if len(sig) == 0 {
		return false
	}
	ok := 0
	for _, k := range keys {
		st := k.pool.Get().(*macState)
		sum := st.mac(body, pre)
		// ConstantTimeCompare is 0 for different lengths, so a truncated
		// or empty signature never verifies.
		ok |= subtle.ConstantTimeCompare(sum, sig)
		k.pool.Put(st)
	}
	return ok == 1
}

// mac computes the MAC of the concatenation of pre and body into st.sum.
// The prefix goes through st.scratch so that nothing is allocated.
func (st *macState) mac(body []byte, pre []string) []byte {
	st.h.Reset()
	if len(pre) > 0 {
		st.scratch = st.scratch[:0]
		for _, p := range pre {
			st.scratch = append(st.scratch, p...)
		}
		st.h.Write(st.scratch)
	}
	st.h.Write(body)
	return st.h.Sum(st.sum[:0])
}

// sign appends the MAC of the concatenation of pre and body under k to dst.
func (k *macKey) sign(dst, body []byte, pre ...string) []byte {
	st := k.pool.Get().(*macState)
	dst = append(dst, st.mac(body, pre)...)
	k.pool.Put(st)
	return dst
}

// decodeHex decodes a hex signature into dst's storage, reporting false
// for invalid input or a length that cannot be a MAC.
func decodeHex(dst *sigBuf, s string) ([]byte, bool) {
	if len(s) == 0 || len(s) > 2*sha512Size || len(s)%2 != 0 {
		return nil, false
	}
	out := dst[:len(s)/2]
	return out, decodeHexInto(out, s)
}

// decodeHexInto decodes a hex string into dst, reporting false unless it
// fills dst exactly.
func decodeHexInto(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := 0; i < len(s); i += 2 {
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i/2] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeBase64 decodes a standard base64 signature into dst, reporting
// false for invalid input or one longer than dst: a MAC (dst a sigBuf) or
// an ECDSA signature in DER (at most 72 bytes for P-256).
func decodeBase64(dst []byte, s string) ([]byte, bool) {
	if len(s) == 0 || base64.StdEncoding.DecodedLen(len(s)) > len(dst) {
		return nil, false
	}
	var src [108]byte // copy to the stack: Decode takes bytes, and a conversion would allocate
	n := copy(src[:], s)
	m, err := base64.StdEncoding.Decode(dst, src[:n])
	if err != nil {
		return nil, false
	}
	return dst[:m], true
}

// base64Header decodes the base64 MAC in the header key into buf: an
// error saying the header is missing, or ErrMalformedSignature.
func base64Header(buf *sigBuf, h http.Header, key string) ([]byte, error) {
	hv := first(h, key)
	if hv == "" {
		return nil, missingHeader(key)
	}
	sig, ok := decodeBase64(buf[:], hv)
	if !ok {
		return nil, ErrMalformedSignature
	}
	return sig, nil
}

// first returns the first value of the canonical header key.
func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
