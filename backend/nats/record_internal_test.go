package nats

import (
	"bytes"
	"testing"

	"github.com/intakehq/intake/dedupe"
)

// FuzzRecord: a record written and read back is the same record, and
// whatever a stream holds under a record subject (another program's
// message, a damaged one) is read as an error, never a panic.
func FuzzRecord(f *testing.F) {
	f.Add("key", []byte(`{"error":"x"}`), []byte("\x00\xffevent"), uint64(7), 3, false)
	f.Add("", []byte(nil), []byte(nil), uint64(0), 0, true)
	f.Fuzz(func(t *testing.T, key string, failure, enc []byte, seq uint64, attempts int, dead bool) {
		r := record{key: key, state: dedupe.Queued, holder: "h1", seq: seq, attempts: attempts, failure: failure, enc: enc, token: "tok"}
		if dead {
			r.state, r.until = dedupe.Dead, 1_700_000_000_000
		}
		m := r.msg("intake.T.e.x")
		got, err := parseRecord(m.Header, m.Data, 42)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		wantSeq := seq
		if seq == 0 {
			wantSeq = 42 // the first write's own sequence
		}
		if got.key != key || got.state != r.state || got.holder != "h1" || got.seq != wantSeq || got.attempts != attempts ||
			!bytes.Equal(got.failure, failure) || !bytes.Equal(got.enc, enc) || got.until != r.until || got.token != "tok" || got.last != 42 {
			t.Fatalf("read back %+v, wrote %+v", got, r)
		}
		// The same bytes as a body of any message: no panic.
		_, _ = parseRecord(m.Header, enc, 1)
		_, _ = parseRecord(m.Header, append([]byte(key), failure...), 1)
	})
}
