package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
)

// TestBehindAReverseProxy: a console on loopback behind a reverse proxy
// on the same host sees every client as loopback. Under the default it
// refuses what the proxy forwards, saying why; with WithAuthorize the
// app's check decides.
func TestBehindAReverseProxy(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	for _, tc := range []struct {
		name string
		opts []console.Option
		want int
	}{
		{"loopback default", nil, http.StatusForbidden},
		{"WithAuthorize", []console.Option{console.WithAuthorize(func(r *http.Request) bool { return r.Header.Get("Cookie") == "session=ok" })}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := httptest.NewServer(console.New(s, append([]console.Option{console.WithLogger(quiet)}, tc.opts...)...))
			defer backend.Close()
			u, _ := url.Parse(backend.URL)
			proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
			defer proxy.Close()
			req, _ := http.NewRequest("GET", proxy.URL+"/api/overview", nil)
			req.Header.Set("Cookie", "session=ok")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode, string(body))
			if tc.want == http.StatusForbidden {
				assert.Contains(t, string(body), "through a proxy")
			}
		})
	}
	// Straight from loopback, without a proxy's headers: the default holds.
	h := console.New(s, console.WithLogger(quiet))
	for _, hdr := range []string{"X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host"} {
		w := do(h, "GET", "/api/overview", local, nil, map[string]string{hdr: "203.0.113.7"})
		assert.Equal(t, http.StatusForbidden, w.Code, hdr)
		assert.True(t, strings.Contains(w.Body.String(), "proxy"), hdr)
	}
	assert.Equal(t, http.StatusOK, do(h, "GET", "/api/overview", local, nil, nil).Code)
}
