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
// app's token. The object's version is resourceData's @odata.etag when
// Graph sends one. A "deleted" change names an object that no longer
// exists: it is Gone, and fetch.Fetcher.Handle passes it on unfetched
// (marked with fetch.MetaGone) instead of fetching a 404 until the
// notification is dead. A change without a resource (a lifecycle
// notification) is about no object.
func GraphObject(change event.Event, base string) (fetch.Object, bool) {
	var c struct {
		ChangeType   string `json:"changeType"`
		Resource     string `json:"resource"`
		ResourceData struct {
			ETag string `json:"@odata.etag"`
		} `json:"resourceData"`
	}
	if json.Unmarshal(change.Payload, &c) != nil || c.Resource == "" {
		return fetch.Object{}, false
	}
	r := strings.TrimPrefix(c.Resource, "/")
	return fetch.Object{ID: r, Version: c.ResourceData.ETag, URL: strings.TrimSuffix(base, "/") + "/" + r,
		Gone: c.ChangeType == "deleted"}, true
}
