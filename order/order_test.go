package order_test

import (
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/order"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(event.Event) string
		e    event.Event
		want string
	}{
		{"stripe", order.Stripe, event.Event{Payload: []byte(`{"id":"evt_1","created":1700000000,"data":{"object":{"id":"sub_9","object":"subscription","customer":"cus_1"}}}`)}, "sub_9"},
		{"stripe thin", order.Stripe, event.Event{Payload: []byte(`{"id":"evt_1","object":"v2.core.event","related_object":{"id":"mtr_1","type":"billing.meter"}}`)}, "mtr_1"},
		{"stripe without object", order.Stripe, event.Event{Payload: []byte(`{"id":"evt_1"}`)}, ""},
		{"github issue", order.GitHub, event.Event{Payload: []byte(`{"action":"edited","issue":{"number":12,"title":"x"},"repository":{"full_name":"octo/hello"}}`)}, "octo/hello#12"},
		{"github pull request", order.GitHub, event.Event{Payload: []byte(`{"number":7,"pull_request":{"number":7},"repository":{"full_name":"octo/hello"}}`)}, "octo/hello#7"},
		{"github push", order.GitHub, event.Event{Payload: []byte(`{"ref":"refs/heads/main","repository":{"full_name":"octo/hello"}}`)}, "octo/hello"},
		{"github without repository", order.GitHub, event.Event{Payload: []byte(`{"zen":"hi"}`)}, ""},
		{"shopify gid", order.Shopify, event.Event{Type: "orders/updated", Payload: []byte(`{"id":450789469,"admin_graphql_api_id":"gid://shopify/Order/450789469"}`)}, "gid://shopify/Order/450789469"},
		{"shopify id", order.Shopify, event.Event{Type: "products/update", Payload: []byte(`{"id":632910392}`)}, "products/632910392"},
		{"shopify nothing", order.Shopify, event.Event{Type: "app/uninstalled", Payload: []byte(`{}`)}, ""},
		{"graph", order.Graph, event.Event{Payload: []byte(`{"changeType":"updated","resource":"Users/1/Messages/2","clientState":"s"}`)}, "Users/1/Messages/2"},
		{"not json", order.Stripe, event.Event{Payload: []byte(`<xml/>`)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.fn(tc.e); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 5, time.UTC)
	for _, tc := range []struct {
		name string
		fn   func(event.Event) (int64, bool)
		e    event.Event
		want int64
		ok   bool
	}{
		{"stripe created", order.StripeVersion, event.Event{Payload: []byte(`{"created":1700000000,"data":{"object":{"created":1}}}`)}, 1700000000, true},
		{"stripe none", order.StripeVersion, event.Event{Payload: []byte(`{}`)}, 0, false},
		{"shopify updated_at", order.ShopifyVersion, event.Event{Time: at, Payload: []byte(`{"updated_at":"2026-12-07T05:00:00-05:00"}`)}, at.Add(-5).UnixNano(), true},
		{"shopify triggered at", order.ShopifyVersion, event.Event{Time: at, Payload: []byte(`{}`)}, at.UnixNano(), true},
		{"shopify none", order.ShopifyVersion, event.Event{Payload: []byte(`{}`)}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.fn(tc.e)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %d %v, want %d %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzKeys: no payload makes a key or version function panic.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{`{"data":{"object":{"id":"x"}}}`, `{"repository":{"full_name":"a/b"},"issue":{"number":1}}`, `{"id":1,"updated_at":"2026-01-01T00:00:00Z"}`, `{"resource":"a"}`, `{"created":"x"}`, `[`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := event.Event{Type: "orders/create", Payload: b}
		_, _, _, _ = order.Stripe(e), order.GitHub(e), order.Shopify(e), order.Graph(e)
		_, _ = order.StripeVersion(e)
		_, _ = order.ShopifyVersion(e)
	})
}
