package poller

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 0 ", 0, true},
		{"-5", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNextLink(t *testing.T) {
	base, _ := url.Parse("https://api.example.com/v1/events?page=1")
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{`<https://api.example.com/v1/events?page=2>; rel="next"`}, "https://api.example.com/v1/events?page=2"},
		{[]string{`<https://api.example.com/e?page=1>; rel="first", </v1/events?page=3>; rel="next last"`}, "https://api.example.com/v1/events?page=3"},
		{[]string{`<https://api.example.com/a>; rel="prev"`, `<https://api.example.com/b>; rel=next`}, "https://api.example.com/b"},
		{[]string{`<https://evil.example.net/steal>; rel="next"`}, ""},
		{[]string{`<http://api.example.com/downgrade>; rel="next"`}, ""},
		{[]string{`garbage`, `<unterminated; rel="next"`}, ""},
	}
	for _, tt := range tests {
		if got := nextLink(tt.in, base); got != tt.want {
			t.Errorf("nextLink(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzHeaders checks the parsers of a server's headers: they never panic,
// never return a negative delay, and never follow a link off the origin.
func FuzzHeaders(f *testing.F) {
	f.Add("2", `<https://api.example.com/p2>; rel="next"`, "0", "1700000000", `"default";r=0;t=30`, "60")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", `<//evil.net/x>; rel=next`, "x", "-1", "remaining=0, reset=5", "-3")
	base, _ := url.Parse("https://api.example.com/events")
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, ra, link, remaining, reset, ietf, pollInterval string) {
		if d, ok := ParseRetryAfter(ra, now); d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", ra, d, ok)
		}
		h := http.Header{}
		h.Set("X-RateLimit-Remaining", remaining)
		h.Set("X-RateLimit-Reset", reset)
		h.Set("RateLimit", ietf)
		h.Set("X-Poll-Interval", pollInterval)
		if d := rateLimitDelay(h, now); d < 0 {
			t.Fatalf("rateLimitDelay = %v", d)
		}
		if got := nextLink([]string{link}, base); got != "" {
			u, err := url.Parse(got)
			if err != nil || u.Host != base.Host || u.Scheme != base.Scheme {
				t.Fatalf("nextLink(%q) = %q: off the origin", link, got)
			}
		}
	})
}
