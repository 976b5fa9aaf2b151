package reconcile

import (
	"encoding/json"
	"strings"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
)

// GraphAPI is Microsoft Graph's v1.0 endpoint.
const GraphAPI = "https://graph.microsoft.com/v1.0"

// GraphObject says which object a Microsoft Graph change is about (one
// of webhook.GraphChanges): its resource, fetched from base (GraphAPI,
// or a national cloud's) with fetch.HTTP and a request that carries the
// app's token. A change without a resource (a lifecycle notification) is
// about no object.
func GraphObject(change event.Event, base string) (fetch.Object, bool) {
	var c struct {
		Resource string `json:"resource"`
	}
	if json.Unmarshal(change.Payload, &c) != nil || c.Resource == "" {
		return fetch.Object{}, false
	}
	r := strings.TrimPrefix(c.Resource, "/")
	return fetch.Object{ID: r, URL: strings.TrimSuffix(base, "/") + "/" + r}, true
}
