package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/fleet"
)

// api sends a JSON request to the console's API, with the CSRF header
// unless csrf is "".
func api(h http.Handler, method, target, csrf, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = local
	r.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		r.Header.Set(console.CSRFHeader, csrf)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func token(t *testing.T, h http.Handler) string {
	t.Helper()
	w := do(h, "GET", "/api/token", local, nil, nil)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &tok))
	return tok.Token
}

func fleetConsole(t *testing.T, store fleet.Store) (*fleet.Fleet, http.Handler) {
	t.Helper()
	s := intake.New(intake.WithLogger(quiet))
	f := fleet.New("accounts", store, fleet.WithLogger(quiet))
	return f, console.New(s, console.WithLogger(quiet), console.WithFleet(f))
}

func TestConnectionsAPI(t *testing.T) {
	f, h := fleetConsole(t, &fleet.Memory{})
	csrf := token(t, h)
	ctx := context.Background()

	for _, tc := range []struct {
		name, method, target, csrf, body string
		want                             int
	}{
		{"add", "POST", "/api/connections", csrf, `{"id":"shop-1","source":"shopify","interval":"10m","credential":"vault:shop-1"}`, 201},
		{"add another", "POST", "/api/connections", csrf, `{"id":"shop-2","source":"shopify"}`, 201},
		{"add taken", "POST", "/api/connections", csrf, `{"id":"shop-1","source":"shopify"}`, 409},
		{"add without source", "POST", "/api/connections", csrf, `{"id":"shop-3"}`, 400},
		{"add with a nonsense interval", "POST", "/api/connections", csrf, `{"id":"shop-3","source":"shopify","interval":"soon"}`, 400},
		{"add with an unknown field", "POST", "/api/connections", csrf, `{"id":"shop-3","source":"shopify","secret":"x"}`, 400},
		{"add without CSRF", "POST", "/api/connections", "", `{"id":"shop-3","source":"shopify"}`, 403},
		{"pause by no one", "POST", "/api/connections/shop-1/pause", csrf, `{}`, 400},
		{"pause", "POST", "/api/connections/shop-1/pause", csrf, `{"by":"ops@example.com","reason":"customer asked"}`, 200},
		{"pause a ghost", "POST", "/api/connections/nope/pause", csrf, `{"by":"ops"}`, 404},
		{"unknown action", "POST", "/api/connections/shop-1/explode", csrf, `{}`, 404},
		{"update credential", "PATCH", "/api/connections/shop-2", csrf, `{"credential":"vault:shop-2b","interval":"1m"}`, 200},
		{"update to a negative interval", "PATCH", "/api/connections/shop-2", csrf, `{"interval":"-1m"}`, 400},
		{"resync", "POST", "/api/connections/shop-2/resync", csrf, `{"cursor":"2026-12-01T00:00:00Z"}`, 200},
		{"list with a bad state", "GET", "/api/connections?state=sleeping", "", ``, 400},
		{"list with a bad limit", "GET", "/api/connections?limit=0", "", ``, 400},
		{"get a ghost", "GET", "/api/connections/nope", "", ``, 404},
	} {
		w := api(h, tc.method, tc.target, tc.csrf, tc.body)
		assert.Equal(t, tc.want, w.Code, "%s: %s", tc.name, w.Body.String())
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"), tc.name)
	}

	c, err := f.Get(ctx, "shop-1")
	require.NoError(t, err)
	assert.Equal(t, "ops@example.com", c.Paused)
	assert.Equal(t, "customer asked", c.Reason)
	assert.Equal(t, 10*time.Minute, c.Interval)
	c, err = f.Get(ctx, "shop-2")
	require.NoError(t, err)
	assert.Equal(t, "vault:shop-2b", c.Credential)
	assert.Equal(t, time.Minute, c.Interval)
	assert.Equal(t, "2026-12-01T00:00:00Z", c.Cursor)

	w := api(h, "GET", "/api/connections?state=paused", "", "")
	var page struct {
		Connections []fleet.Connection
		Next        string
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	require.Len(t, page.Connections, 1)
	assert.Equal(t, "shop-1", page.Connections[0].ID)

	w = api(h, "GET", "/api/connections?limit=1", "", "")
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	assert.Equal(t, "shop-1", page.Next, "a full page names where the next starts")

	assert.Equal(t, 200, api(h, "POST", "/api/connections/shop-1/resume", csrf, ``).Code)
	assert.Equal(t, 200, api(h, "POST", "/api/connections/shop-1/remove", csrf, ``).Code)
	_, err = f.Get(ctx, "shop-1")
	assert.ErrorIs(t, err, fleet.ErrNotFound)
}

func TestConnectionsPage(t *testing.T) {
	f, h := fleetConsole(t, &fleet.Memory{})
	ctx := context.Background()
	require.NoError(t, f.Add(ctx, fleet.Connection{ID: `acct-<b>1</b>`, Source: "stripe"}))
	require.NoError(t, f.Add(ctx, fleet.Connection{ID: "acct-2", Source: "stripe"}))
	require.NoError(t, f.Pause(ctx, "acct-2", fleet.PausedBySystem, "401 token revoked"))

	w := do(h, "GET", "/connections", local, nil, nil)
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	assert.Contains(t, body, "acct-&lt;b&gt;1&lt;/b&gt;", "ids are escaped")
	assert.NotContains(t, body, "<b>1</b>")
	assert.Contains(t, body, "401 token revoked")
	assert.Contains(t, body, "paused</span> by system")

	overview := do(h, "GET", "/", local, nil, nil).Body.String()
	assert.Contains(t, overview, `id="connections-link"`)
	assert.Contains(t, overview, "1 paused")

	csrf := between(body, `name="csrf" value="`, `"`)
	w = do(h, "POST", "/connections/acct-2/resume", local, url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	assert.Equal(t, "../../connections?done=resume&id=acct-2", w.Header().Get("Location"))
	c, _ := f.Get(ctx, "acct-2")
	assert.Empty(t, c.Paused)

	w = do(h, "POST", "/connections/acct-2/pause", local, url.Values{"csrf": {"wrong"}}, nil)
	assert.Equal(t, http.StatusForbidden, w.Code)
	w = do(h, "POST", "/connections/acct-2/pause", local, url.Values{"csrf": {csrf}, "reason": {"migrating"}}, nil)
	require.Equal(t, http.StatusSeeOther, w.Code)
	c, _ = f.Get(ctx, "acct-2")
	assert.Equal(t, "console", c.Paused)
	assert.Equal(t, "migrating", c.Reason)

	assert.Equal(t, http.StatusForbidden, do(h, "GET", "/connections", "203.0.113.9:5000", nil, nil).Code, "loopback only by default")
}

// downFleet is a fleet store that does not answer.
type downFleet struct{ fleet.Memory }

var errFleetDown = errors.New("dial tcp 127.0.0.1:5432: connection refused")

func (*downFleet) List(context.Context, fleet.Filter) ([]fleet.Connection, error) {
	return nil, errFleetDown
}
func (*downFleet) Pause(context.Context, string, string, string) error { return errFleetDown }

func TestConnectionsStoreOutageIsA503(t *testing.T) {
	_, h := fleetConsole(t, &downFleet{})
	csrf := token(t, h)
	for _, w := range []*httptest.ResponseRecorder{
		do(h, "GET", "/connections", local, nil, nil),
		api(h, "GET", "/api/connections", "", ""),
		api(h, "POST", "/api/connections/a/pause", csrf, `{"by":"ops"}`),
	} {
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
		assert.NotEmpty(t, w.Header().Get("Retry-After"))
	}
}

func TestNoFleetNoConnections(t *testing.T) {
	_, h, _, _ := setup(t)
	assert.Equal(t, http.StatusNotFound, do(h, "GET", "/api/connections", local, nil, nil).Code)
	assert.NotContains(t, do(h, "GET", "/", local, nil, nil).Body.String(), "connections-link")
}
