package webhook

import (
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
	"net/url"
)

// MicrosoftGraph returns the verifier of Microsoft Graph change
// notifications, given the clientState value(s) of your subscriptions.
//
// Graph validates a subscription's endpoint with a POST carrying a
// validationToken query parameter; the handler answers it itself with the
// token as plain text. Graph does not sign that request: anyone can make
// the endpoint echo a token (as text, with nosniff), and nothing is stored.
// A notification is a JSON object whose "value" array holds the changes;
// Graph signs nothing, and the proof that it comes from your subscription
// is the clientState in each item, a secret you chose, compared in
// constant time: every item must carry a configured one. This is a shared
// secret, not a signature: use HTTPS. (Rich notifications with resource
// data also carry validation tokens, JWTs that this scheme does not
// check.) The event's ID is derived from the content, its Type the first
// item's changeType (or lifecycleEvent).
func MicrosoftGraph(clientStates ...string) *Scheme {
	s := newRequestScheme("microsoft-graph", nil, nil, nil, verifyGraph)
	s.bad = nil
	s.addTokens(clientStates)
	return s
}

func verifyGraph(s *Scheme, r *Request) (event.Event, error) {
	if raw, ok := queryParam(r.URL, "validationToken"); ok {
		token, err := url.QueryUnescape(raw)
		if err != nil {
			return event.Event{}, malformed("validationToken is not a query value")
		}
		return event.Event{}, textReply(token)
	}
	raw, ok := jsonscan.Field(r.Body, "value")
	if !ok {
		return event.Event{}, missingField("value")
	}
	e := event.Event{Payload: r.Body}
	n, bad := 0, false
	err := jsonscan.Array(raw, func(item []byte) bool {
		n++
		var state string
		err := jsonscan.Object(item, func(k, v []byte) bool {
			switch string(k) {
			case "clientState":
				state, _ = jsonscan.String(v)
			case "changeType", "lifecycleEvent":
				if e.Type == "" {
					e.Type, _ = jsonscan.String(v)
				}
			}
			return false
		})
		bad = err != nil || !s.tokenMatches(state)
		return bad
	})
	switch {
	case err != nil:
		return event.Event{}, malformed(`"value" is not an array`)
	case n == 0:
		return event.Event{}, malformed(`"value" is empty`)
	case bad:
		return event.Event{}, ErrSignatureMismatch
	}
	return e, nil
}

// GraphChanges splits a Microsoft Graph notification (an event of the
// [MicrosoftGraph] scheme, whose "value" holds one or more changes, as
// Graph batches them) into one event per change: its Payload the change's
// JSON object (with "resource", the path of the object that changed, to
// fetch on demand), its Type the change's changeType or lifecycleEvent,
// its ID derived from the change's content, and the rest of e kept. A
// handler that fetches each change's resource (fetch.Fetcher.Fetch)
// returns an error for the whole notification if one fails: the
// notification is retried, its changes handled again.
func GraphChanges(e event.Event) []event.Event {
	raw, ok := jsonscan.Field(e.Payload, "value")
	if !ok {
		return nil
	}
	var out []event.Event
	_ = jsonscan.Array(raw, func(item []byte) bool {
		c := e
		c.Payload = append([]byte(nil), item...)
		c.Type = ""
		_ = jsonscan.Object(item, func(k, v []byte) bool {
			switch string(k) {
			case "changeType", "lifecycleEvent":
				if c.Type == "" {
					c.Type, _ = jsonscan.String(v)
				}
			}
			return false
		})
		c.ID = event.ContentID(event.Event{Type: c.Type, Payload: c.Payload})
		out = append(out, c)
		return false
	})
	return out
}
