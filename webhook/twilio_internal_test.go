package webhook

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The form parser agrees with net/url on every body net/url accepts, and
// orders the parameters as Twilio signs them.
func FuzzTwilioForm(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "Body=caf%C3%A9+%26&x", "&&a=&=b&", "a=%zz", "a=%2", "k=v+v%2B%25"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fm := &form{}
		ok := fm.parse(body)
		want, err := url.ParseQuery(string(body))
		if err != nil {
			return // net/url refuses it (";" or a bad escape): only no panic is required
		}
		if !ok {
			t.Fatalf("parse(%q) failed; net/url reads %v", body, want)
		}
		var got, exp [][2]string
		for _, p := range fm.pairs {
			got = append(got, [2]string{string(fm.buf[p.k0:p.k1]), string(fm.buf[p.v0:p.v1])})
		}
		for k, vs := range want {
			for _, v := range vs {
				exp = append(exp, [2]string{k, v})
			}
		}
		byNameThenValue := func(a, b [2]string) int {
			if c := strings.Compare(a[0], b[0]); c != 0 {
				return c
			}
			return strings.Compare(a[1], b[1])
		}
		slices.SortFunc(exp, byNameThenValue)
		if !slices.Equal(got, exp) {
			t.Fatalf("parse(%q) = %q, net/url reads %q", body, got, exp)
		}
	})
}

// Many "+" and one "%" far away: linear, not quadratic.
func TestUnescapeLinear(t *testing.T) {
	body := append(bytes.Repeat([]byte("+"), 1<<20), "%41"...)
	fm := &form{}
	if !fm.parse(append([]byte("k="), body...)) {
		t.Fatal("parse failed")
	}
	if got := fm.buf[fm.pairs[0].v0:fm.pairs[0].v1]; len(got) != 1<<20+1 || got[len(got)-1] != 'A' {
		t.Fatalf("value of %d bytes", len(got))
	}
}
