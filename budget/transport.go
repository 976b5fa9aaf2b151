package budget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// KeyFunc names the credential of a request: the key of its budget. ""
// means the request is not paced.
type KeyFunc func(r *http.Request) string

// ByHeader keys a request by a header holding its credential
// (Authorization, X-Api-Key): the key is the host and the SHA-256 of the
// header's value, so that the credential itself is never stored.
func ByHeader(name string) KeyFunc {
	return func(r *http.Request) string {
		v := r.Header.Get(name)
		if v == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(v))
		return r.URL.Host + "/" + hex.EncodeToString(sum[:12])
	}
}

// Transport returns a RoundTripper that waits for each request's slot in
// the budget of its credential (key names it), sends it with base
// (http.DefaultTransport when nil), and teaches the budget what the
// response says. Give it to the http.Client of the poller, the fetcher
// and the sweep that share a credential. A store failure fails the
// request (the poller backs off).
func (b *Budget) Transport(base http.RoundTripper, key KeyFunc) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{b: b, base: base, key: key}
}

type transport struct {
	b    *Budget
	base http.RoundTripper
	key  KeyFunc
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	k := t.key(r)
	if k == "" {
		return t.base.RoundTrip(r)
	}
	if err := t.b.Wait(r.Context(), k); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	// What the API says is learned even if the request's context has
	// ended: the next request needs it.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	_ = t.b.Learn(lctx, k, Parse(resp.StatusCode, resp.Header, t.b.now()))
	cancel()
	return resp, nil
}
