// Package jsonscan finds top-level fields of a JSON object without decoding
// the rest, and without allocating. Webhook verifiers use it to read an
// event's id, type and time from a body they have already authenticated.
//
// It is lenient: it checks the structure it walks through (strings, nesting,
// separators), not every detail of the grammar, and it stops at the first
// match it is told to stop at. It never panics on any input.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// ErrSyntax is returned for input that is not a JSON object.
var ErrSyntax = errors.New("jsonscan: not a JSON object")

// Object calls fn for each top-level member of the object in data, in
// order, with the key (without quotes, escapes left as they are) and the
// raw value. It stops early when fn returns true.
func Object(data []byte, fn func(key, value []byte) (stop bool)) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return ErrSyntax
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return ErrSyntax
		}
		kEnd, ok := skipString(data, i)
		if !ok {
			return ErrSyntax
		}
		key := data[i+1 : kEnd-1]
		i = skipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return ErrSyntax
		}
		i = skipWS(data, i+1)
		vEnd, ok := skipValue(data, i)
		if !ok {
			return ErrSyntax
		}
		if fn(key, data[i:vEnd]) {
			return nil
		}
		i = skipWS(data, vEnd)
		if i >= len(data) {
			return ErrSyntax
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case '}':
			return nil
		default:
			return ErrSyntax
		}
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string that starts at
// data[i] == '"'.
func skipString(data []byte, i int) (int, bool) {
	j := i + 1
	for {
		if j > len(data) {
			return 0, false
		}
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return 0, false
		}
		k += j
		n := 0
		for p := k - 1; p > i && data[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return k + 1, true
		}
		j = k + 1
	}
}

func skipValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); {
			switch data[j] {
			case '"':
				end, ok := skipString(data, j)
				if !ok {
					return 0, false
				}
				j = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
			j++
		}
		return 0, false
	case ',', '}', ']', ':':
		return 0, false
	}
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j, true
		}
		j++
	}
	return j, true
}

// String returns the value of a raw JSON string, and false if raw is not
// a string.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Int returns the value of a raw JSON integer (or a string holding one),
// and false if raw is neither.
func Int(raw []byte) (int64, bool) {
	if len(raw) >= 2 && raw[0] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	if len(raw) == 0 || len(raw) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// Float returns the value of a raw JSON number (or a string holding one),
// and false if raw is neither.
func Float(raw []byte) (float64, bool) {
	if len(raw) >= 2 && raw[0] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	if len(raw) == 0 || len(raw) > 40 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}
