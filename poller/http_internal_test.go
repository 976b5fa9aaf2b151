package poller

import (
	"strings"
	"testing"
)

// FuzzHTTPCursor: a cursor read back from a checkpoint is what was
// written, whatever its fields hold, and reading any string never fails.
func FuzzHTTPCursor(f *testing.F) {
	f.Add("123", "", "", "", "")
	f.Add("", "https://api.example.com/events?page=2", "https://api.example.com/events", `"v1"`, "Sun, 29 Nov 2026 10:00:00 GMT")
	f.Add(httpCursorPrefix+"c=1", "x", "", "", "")
	f.Fuzz(func(t *testing.T, api, link, url, etag, modified string) {
		c := httpCursor{api: api, link: link, url: url, etag: etag, modified: modified}
		if got := parseHTTPCursor(c.String()); got != c {
			t.Fatalf("round trip: %#v → %q → %#v", c, c.String(), got)
		}
		_ = parseHTTPCursor(api)
		if !strings.HasPrefix(api, httpCursorPrefix) && parseHTTPCursor(api) != (httpCursor{api: api}) {
			t.Fatalf("a plain cursor %q is not the API's own", api)
		}
	})
}
