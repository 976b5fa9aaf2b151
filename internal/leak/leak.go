// Package leak checks that a test leaves no goroutine behind.
package leak

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the goroutine count now and, when the test ends, fails it
// if the count has not come back down within a second.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d before, %d after; leaked:\n%s", before, n, firstStacks(string(buf), 6))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func firstStacks(all string, n int) string {
	parts := strings.Split(all, "\n\n")
	if len(parts) > n {
		parts = parts[:n]
	}
	return strings.Join(parts, "\n\n")
}
