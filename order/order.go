// Package order names the object an event is about (its order key) and
// the version of the object's state it carries, for the providers whose
// payloads say so. Give a key function to intake.WithOrderKey, so that a
// subscription handles one event of an object at a time in stored order,
// and a version function to intake.WithVersion, so that a subscription
// given intake.WithSkipStale skips a state older than one it applied.
//
// Keys: [Stripe] (the object of data.object, or a thin event's
// related_object), [GitHub] (the repository and the issue or pull
// request), [Shopify] (the resource's admin GraphQL id), [Graph] (the
// changed resource's path, after webhook.GraphChanges). Versions:
// [StripeVersion] (the event's created second) and [ShopifyVersion] (the
// resource's updated_at, else X-Shopify-Triggered-At). Graph's etags are
// not ordered, so Graph has no version; nor do GitHub payloads carry one
// for every object. Every function reads the payload as it came and
// returns "" (unordered) or false (no version) when the field is absent.
package order

import (
	"strconv"
	"strings"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// path returns the value at the path of object keys in data.
func path(data []byte, keys ...string) ([]byte, bool) {
	for _, k := range keys {
		v, ok := jsonscan.Field(data, k)
		if !ok {
			return nil, false
		}
		data = v
	}
	return data, true
}

func str(data []byte, keys ...string) string {
	v, ok := path(data, keys...)
	if !ok {
		return ""
	}
	s, _ := jsonscan.String(v)
	return s
}

// Stripe returns the id of the object a Stripe event is about:
// data.object.id ("cus_123"), or a thin event's related_object.id.
func Stripe(e event.Event) string {
	if id := str(e.Payload, "data", "object", "id"); id != "" {
		return id
	}
	return str(e.Payload, "related_object", "id")
}

// StripeVersion returns a Stripe event's created time (Unix seconds): a
// later event about an object carries a later state. Two events of one
// second have the same version, and neither is skipped as stale.
func StripeVersion(e event.Event) (int64, bool) {
	v, ok := jsonscan.Field(e.Payload, "created")
	if !ok {
		return 0, false
	}
	return jsonscan.Int(v)
}

// GitHub returns the repository and the issue or pull request a GitHub
// event is about ("octo/hello#12"), or the repository alone
// ("octo/hello") for an event about neither, such as a push.
func GitHub(e event.Event) string {
	repo := str(e.Payload, "repository", "full_name")
	if repo == "" {
		return ""
	}
	for _, obj := range []string{"issue", "pull_request"} {
		if v, ok := path(e.Payload, obj, "number"); ok {
			if n, ok := jsonscan.Int(v); ok {
				return repo + "#" + strconv.FormatInt(n, 10)
			}
		}
	}
	return repo
}

// Shopify returns the resource a Shopify webhook is about: its
// admin_graphql_api_id ("gid://shopify/Order/450789469"), or the topic's
// resource and the payload's id ("orders/450789469").
func Shopify(e event.Event) string {
	if gid := str(e.Payload, "admin_graphql_api_id"); gid != "" {
		return gid
	}
	v, ok := jsonscan.Field(e.Payload, "id")
	if !ok {
		return ""
	}
	id, ok := jsonscan.Int(v)
	if !ok {
		return ""
	}
	resource, _, _ := strings.Cut(e.Type, "/")
	return resource + "/" + strconv.FormatInt(id, 10)
}

// ShopifyVersion returns the resource's updated_at (Unix nanoseconds), or,
// without it, the webhook's X-Shopify-Triggered-At (the event's Time).
func ShopifyVersion(e event.Event) (int64, bool) {
	if v, ok := jsonscan.Field(e.Payload, "updated_at"); ok {
		if t, ok := jsonscan.Time(v); ok {
			return t.UnixNano(), true
		}
	}
	if !e.Time.IsZero() {
		return e.Time.UnixNano(), true
	}
	return 0, false
}

// Graph returns the resource a Microsoft Graph change is about (its
// "resource" path, e.g. "Users/1/Messages/2"): give it the events of
// webhook.GraphChanges, one per change.
func Graph(e event.Event) string { return str(e.Payload, "resource") }
