package logsample

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAtMostOncePerSecondPerReason(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	l := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	var s Sampler
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 1500*time.Millisecond {
				s.Log(l, slog.LevelError, "store", "store down")
				s.Log(l, slog.LevelError, "other", "other error")
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	for _, reason := range []string{"store", "other"} {
		n := strings.Count(out, "reason="+reason)
		if n < 1 || n > 2 {
			t.Errorf("%d records for %s in 1.5 s, want 1 or 2:\n%s", n, reason, out)
		}
	}
	if !strings.Contains(out, "suppressed_since_last=") {
		t.Error("no count of what was left out")
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
