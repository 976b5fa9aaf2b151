package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func fields(t *testing.T, data string) (map[string]string, error) {
	t.Helper()
	got := map[string]string{}
	err := Object([]byte(data), func(k, v []byte) bool {
		got[string(k)] = string(v)
		return false
	})
	return got, err
}

func TestObject(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{`{}`, map[string]string{}, false},
		{` { "id" : "evt_1" , "n":12,"o":{"a":[1,"}",{"b":"\"]"}]},"t":true} `,
			map[string]string{"id": `"evt_1"`, "n": "12", "o": `{"a":[1,"}",{"b":"\"]"}]}`, "t": "true"}, false},
		{`{"esc\"aped":"a\\"}`, map[string]string{`esc\"aped`: `"a\\"`}, false},
		{`[1,2]`, nil, true},
		{``, nil, true},
		{`{"a":}`, nil, true},
		{`{"a" 1}`, nil, true},
		{`{"a":1`, nil, true},
		{`{"a":"unterminated}`, nil, true},
		{`{"a":{"b":1}`, nil, true},
		{`{"a":1 "b":2}`, nil, true},
		{`{a:1}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := fields(t, tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, fields %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestStopEarly(t *testing.T) {
	n := 0
	err := Object([]byte(`{"a":1,"b":2, garbage`), func(k, v []byte) bool {
		n++
		return string(k) == "b"
	})
	if err != nil || n != 2 {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

func TestScalars(t *testing.T) {
	if s, ok := String([]byte(`"a\u00e9\n"`)); !ok || s != "aé\n" {
		t.Errorf("String = %q %v", s, ok)
	}
	if _, ok := String([]byte(`12`)); ok {
		t.Error("String(12) ok")
	}
	if n, ok := Int([]byte(`1700000000`)); !ok || n != 1700000000 {
		t.Errorf("Int = %d %v", n, ok)
	}
	if n, ok := Int([]byte(`"42"`)); !ok || n != 42 {
		t.Errorf("Int(string) = %d %v", n, ok)
	}
	if _, ok := Int([]byte(`99999999999999999999999`)); ok {
		t.Error("overflowing Int ok")
	}
	if f, ok := Float([]byte(`1531420618.000200`)); !ok || f != 1531420618.0002 {
		t.Errorf("Float = %v %v", f, ok)
	}
}

// FuzzObject checks that Object never panics and, on valid JSON objects
// with distinct keys, reports exactly the members encoding/json sees.
func FuzzObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"id":"evt_1","type":"a.b","created":1}`, `{"a":{"b":["}",1]}}`,
		`{"x":"\\\""}`, `{"a":1,"a":2}`, `{"a" : [ ] , "b" : { } }`, `{"":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []string
		vals := map[string][]byte{}
		err := Object(data, func(k, v []byte) bool {
			got = append(got, string(k))
			vals[string(k)] = v
			return false
		})
		var want map[string]json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return // not a JSON object: only no panic is required
		}
		if err != nil {
			t.Fatalf("valid object %q: %v", data, err)
		}
		for _, k := range got {
			var uk string
			if json.Unmarshal([]byte(`"`+k+`"`), &uk) != nil {
				t.Fatalf("key %q not a JSON string body", k)
			}
			if _, ok := want[uk]; !ok {
				t.Fatalf("key %q not seen by encoding/json in %q", uk, data)
			}
		}
		if len(vals) == len(want) && len(got) == len(want) {
			for k, v := range vals {
				var uk string
				_ = json.Unmarshal([]byte(`"`+k+`"`), &uk)
				if !json.Valid(v) || string(compact(v)) != string(compact(want[uk])) {
					t.Fatalf("value of %q = %q, encoding/json has %q", k, v, want[uk])
				}
			}
		}
	})
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func TestArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{`[]`, nil, false},
		{` [ 1 , "a]" , {"b":[2]} , null ] `, []string{`1`, `"a]"`, `{"b":[2]}`, `null`}, false},
		{`[1,]`, []string{`1`}, true},
		{`[1 2]`, []string{`1`}, true},
		{`{"a":1}`, nil, true},
		{`[`, nil, true},
	} {
		var got []string
		err := Array([]byte(tc.in), func(v []byte) bool { got = append(got, string(v)); return false })
		if (err != nil) != tc.err {
			t.Errorf("Array(%q) error = %v, want error %v", tc.in, err, tc.err)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Array(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	v, ok := Field([]byte(`{"a":1,"b":{"c":2}}`), "b")
	if !ok || string(v) != `{"c":2}` {
		t.Errorf("Field = %q, %v", v, ok)
	}
	if _, ok := Field([]byte(`{"a":1}`), "b"); ok {
		t.Error("Field found a missing key")
	}
}

func FuzzArray(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a",{"b":[2]},null]`, `[[],[[]]]`, `[1,]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got [][]byte
		err := Array(data, func(v []byte) bool { got = append(got, v); return false })
		var want []json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return // not a JSON array: only no panic is required
		}
		if err != nil {
			t.Fatalf("valid array %q: %v", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d elements, encoding/json has %d in %q", len(got), len(want), data)
		}
		for i := range got {
			if string(compact(got[i])) != string(compact(want[i])) {
				t.Fatalf("element %d = %q, encoding/json has %q", i, got[i], want[i])
			}
		}
	})
}

func TestTime(t *testing.T) {
	for _, s := range []string{"2022-07-13T20:30:59.037339943Z", "2023-11-14T22:13:20Z", "2024-03-20T10:07:35.590857Z",
		"2021-04-26T17:36:27.458+02:00", "2021-04-26t17:36:27-05:30", "2020-02-29T00:00:00Z"} {
		got, ok := Time([]byte(`"` + s + `"`))
		want, err := time.Parse(time.RFC3339Nano, strings.Replace(s, "t", "T", 1))
		if !ok || err != nil || !got.Equal(want) {
			t.Errorf("Time(%q) = %v, %v; time.Parse: %v, %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{`""`, `"2022-07-13"`, `"2022-07-13T20:30:59"`, `"2022-13-13T20:30:59Z"`, `"2021-02-30T00:00:00Z"`,
		`"2022-07-13T20:30:59.Z"`, `"2022-07-13T20:30:59+0200"`, `2022`, `"2022-07-13T20:30:59ZZ"`} {
		if got, ok := Time([]byte(s)); ok {
			t.Errorf("Time(%s) = %v, want not ok", s, got)
		}
	}
}

func FuzzTime(f *testing.F) {
	for _, s := range []string{`"2022-07-13T20:30:59.037339943Z"`, `"2021-04-26T17:36:27.458+02:00"`, `"2021-02-30T00:00:00Z"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := Time(raw)
		if !ok {
			return
		}
		// What Time accepts, time.Parse reads the same.
		want, err := time.Parse(time.RFC3339Nano, strings.ToUpper(string(raw[1:len(raw)-1])))
		if err != nil || !got.Equal(want) {
			t.Fatalf("Time(%s) = %v; time.Parse: %v, %v", raw, got, want, err)
		}
	})
}
