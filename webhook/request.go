package webhook

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/intakehq/intake/event"
)

// Request is what a [RequestVerifier] sees of an HTTP request: a verifier
// whose provider signs more than the headers and the body (the URL, as
// Twilio and Square do) or answers a handshake (a GET, a query parameter).
type Request struct {
	Method string
	// URL is the URL the request was sent to as this server saw it:
	// "https" when the connection is TLS, else "http", "://", the Host
	// header and the request target exactly as received (path and query,
	// before any router stripped a prefix). Behind a proxy that is not
	// the URL the provider signed: pin it with [Scheme.WithPublicURL], or
	// trust the proxy's headers with [Scheme.WithForwardedHeaders].
	URL    string
	Header http.Header
	Body   []byte

	ctx context.Context // the HTTP request's; nil outside a handler
}

// Context returns the context of the HTTP request (its cancellation, its
// values), or context.Background() when the request was made by hand.
func (r *Request) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// RequestVerifier is a [Verifier] that can verify a whole request. The
// handler calls VerifyRequest when its verifier has it; every built-in
// [Scheme] does.
type RequestVerifier interface {
	Verifier
	VerifyRequest(r *Request) (event.Event, error)
}

// requestURL is the URL of r as this server saw it.
func requestURL(r *http.Request) string {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	target := r.RequestURI
	if target == "" || target[0] != '/' {
		target = r.URL.RequestURI()
	}
	return scheme + r.Host + target
}

// WithPublicURL returns a copy of s that verifies as if every request had
// been sent to u, the URL the provider was given: the schemes that sign
// the URL (Twilio, Square) behind a proxy or a router that rewrites it.
// When u has no query, the request's own query is appended. Verify (not
// only the handler's VerifyRequest) then works for those schemes. A u that
// is not an absolute http(s) URL makes every request fail, and [New]
// panic.
func (s *Scheme) WithPublicURL(u string) *Scheme {
	c := *s
	c.publicURL = u
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		c.bad = malformed("public URL " + strconv.Quote(u) + " is not an absolute http(s) URL")
	}
	return &c
}

// WithForwardedHeaders returns a copy of s that takes the scheme and host
// of the URL the provider signed from X-Forwarded-Proto and
// X-Forwarded-Host, for the schemes that sign the URL. Use it only behind
// a proxy that sets both and strips them from what clients send: a client
// can write any header. Off by default; [Scheme.WithPublicURL] wins.
func (s *Scheme) WithForwardedHeaders() *Scheme {
	c := *s
	c.forwarded = true
	return &c
}

// signedURL is the URL the provider signed, for the schemes that sign it.
func (s *Scheme) signedURL(r *Request) (string, error) {
	if s.publicURL != "" {
		if strings.IndexByte(s.publicURL, '?') >= 0 {
			return s.publicURL, nil
		}
		if _, q, ok := strings.Cut(r.URL, "?"); ok {
			return s.publicURL + "?" + q, nil
		}
		return s.publicURL, nil
	}
	if r.URL == "" {
		return "", malformed(s.name + " signs the request URL: verify through the handler, or pin it with WithPublicURL")
	}
	if !s.forwarded {
		return r.URL, nil
	}
	proto, host := first(r.Header, "X-Forwarded-Proto"), first(r.Header, "X-Forwarded-Host")
	if proto == "" || host == "" {
		return r.URL, nil
	}
	proto, _, _ = strings.Cut(proto, ",") // a chain of proxies: the first is the client's
	host, _, _ = strings.Cut(host, ",")
	_, rest, _ := strings.Cut(r.URL, "://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[i:]
	} else {
		rest = "/"
	}
	return strings.TrimSpace(proto) + "://" + strings.TrimSpace(host) + rest, nil
}

// queryParam returns the raw (still escaped) value of the first query
// parameter name in u, and whether there is one, without parsing the
// rest: the ack path of the schemes that read one parameter.
func queryParam(u, name string) (string, bool) {
	_, q, ok := strings.Cut(u, "?")
	if !ok {
		return "", false
	}
	q, _, _ = strings.Cut(q, "#")
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// queryValue is queryParam's value, "" when absent.
func queryValue(u, name string) string {
	v, _ := queryParam(u, name)
	return v
}

// query returns the query of r's URL.
func (r *Request) query() url.Values {
	_, q, ok := strings.Cut(r.URL, "?")
	if !ok {
		return nil
	}
	v, _ := url.ParseQuery(q)
	return v
}

// addTokens keeps shared tokens, compared in constant time. None, or an
// empty one, makes the scheme unusable.
func (s *Scheme) addTokens(tokens []string) {
	if len(tokens) == 0 {
		s.bad = ErrNoSecret
	}
	for _, t := range tokens {
		if t == "" {
			s.bad = ErrNoSecret
			return
		}
		s.tokens = append(s.tokens, []byte(t))
	}
}

// tokenMatches reports, in constant time over the configured tokens,
// whether v is one of them. An empty v never matches.
func (s *Scheme) tokenMatches(v string) bool {
	if v == "" {
		return false
	}
	ok := 0
	for _, t := range s.tokens {
		ok |= subtle.ConstantTimeCompare(t, []byte(v))
	}
	return ok == 1
}

// textReply answers a handshake with its challenge as plain text.
func textReply(challenge string) *Reply {
	return &Reply{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte(challenge)}
}
