package webhook

import (
	"net/http"

	"github.com/intakehq/intake/event"
)

// GitLab returns the verifier of GitLab's webhook secret token.
//
// This is not a signature: GitLab sends the token you configured, as is,
// in X-Gitlab-Token, and the scheme compares it in constant time. The
// token proves the sender knows it, but does not protect the body: anyone
// who sees one request (a logging proxy, a TLS terminator) can send any
// body with it. Serve GitLab over HTTPS only. The replay guard is on by
// default. The event's ID is Idempotency-Key (the same on a retry; GitLab
// 17.4 and later), else X-Gitlab-Event-Uuid, else derived from the
// content; its Type is X-Gitlab-Event. [Scheme.Headers] leaves the token
// out, so that [WithKeepHeaders] never stores it.
func GitLab(tokens ...string) *Scheme {
	s := newScheme("gitlab", nil, nil, nil, verifyGitLab)
	s.bad = nil
	s.addTokens(tokens)
	s.headers = []string{"Idempotency-Key", "X-Gitlab-Event-Uuid", "X-Gitlab-Event"}
	s.guardDefault = true
	return s
}

func verifyGitLab(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	tok := first(h, "X-Gitlab-Token")
	if tok == "" {
		return event.Event{}, missingHeader("X-Gitlab-Token")
	}
	if !s.tokenMatches(tok) {
		return event.Event{}, ErrSignatureMismatch
	}
	id := first(h, "Idempotency-Key")
	if id == "" {
		id = first(h, "X-Gitlab-Event-Uuid")
	}
	return event.Event{ID: id, Type: first(h, "X-Gitlab-Event"), Payload: body}, nil
}
