package budget

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limits is what a response said of a credential's budget.
type Limits struct {
	Limited    bool          // the answer was a 429
	RetryAfter time.Duration // Retry-After (on a 429 or a 503)
	Remaining  int           // requests left until Reset; -1 when not said
	Reset      time.Time     // when the window ends
	Limit      int           // the window's size, when said; 0 otherwise
}

// Known reports whether the response said anything of the budget.
func (l Limits) Known() bool { return l.Limited || l.RetryAfter > 0 || l.Remaining >= 0 }

// Parse reads what a response says of the budget: its status (429),
// Retry-After (seconds or an HTTP date), the IETF RateLimit header in
// both drafts' forms ("limit=100, remaining=5, reset=30" and
// `"default";r=5;t=30`), and X-RateLimit-Limit, -Remaining and -Reset
// (seconds from now, or a Unix time when larger than 10^9). Nonsense is
// ignored, never trusted: a negative or absurd number says nothing.
func Parse(status int, h http.Header, now time.Time) Limits {
	l := Limits{Limited: status == http.StatusTooManyRequests, Remaining: -1}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if d, ok := retryAfter(h.Get("Retry-After"), now); ok {
			l.RetryAfter = d
		}
	}
	if rl := h.Get("Ratelimit"); rl != "" {
		params := map[string]string{}
		for part := range strings.FieldsFuncSeq(rl, func(r rune) bool { return r == ';' || r == ',' }) {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		rem, okR := count(first(params, "r", "remaining"))
		reset, okT := count(first(params, "t", "reset"))
		if okR && okT {
			l.Remaining, l.Reset = rem, now.Add(time.Duration(reset)*time.Second)
		}
		if lim, ok := count(first(params, "limit")); ok {
			l.Limit = lim
		}
		if l.Limit == 0 {
			if pol := h.Get("Ratelimit-Policy"); pol != "" {
				for part := range strings.SplitSeq(pol, ";") {
					if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.TrimSpace(k) == "q" {
						if q, ok := count(v); ok {
							l.Limit = q
						}
					}
				}
			}
		}
	}
	if l.Remaining < 0 {
		rem, okR := count(h.Get("X-Ratelimit-Remaining"))
		reset, okT := count(h.Get("X-Ratelimit-Reset"))
		if okR && okT {
			l.Remaining = rem
			if reset > 1_000_000_000 {
				l.Reset = time.Unix(int64(reset), 0)
			} else {
				l.Reset = now.Add(time.Duration(reset) * time.Second)
			}
		}
		if lim, ok := count(h.Get("X-Ratelimit-Limit")); ok {
			l.Limit = lim
		}
	}
	return l
}

func first(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return ""
}

// count reads a count of requests or seconds: a decimal from 0 to 10^10.
func count(s string) (int, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > 10_000_000_000 {
		return 0, false
	}
	return int(n), true
}

// retryAfter reads Retry-After: seconds, or an HTTP date; at most a day.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, ok := count(v); ok {
		return min(time.Duration(n)*time.Second, 24*time.Hour), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), 24*time.Hour), true
	}
	return 0, false
}
