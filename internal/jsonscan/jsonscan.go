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
	"time"
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

// Array calls fn for each element of the array in data, in order, with the
// element's raw value. It stops early when fn returns true. It returns
// [ErrSyntax] for input that is not a JSON array.
func Array(data []byte, fn func(value []byte) (stop bool)) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '[' {
		return ErrSyntax
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == ']' {
		return nil
	}
	for {
		vEnd, ok := skipValue(data, i)
		if !ok {
			return ErrSyntax
		}
		if fn(data[i:vEnd]) {
			return nil
		}
		i = skipWS(data, vEnd)
		if i >= len(data) {
			return ErrSyntax
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case ']':
			return nil
		default:
			return ErrSyntax
		}
	}
}

// Field returns the raw value of the member named key in the object in
// data, and whether there is one. The key is compared with the raw,
// unescaped bytes of the member names.
func Field(data []byte, key string) ([]byte, bool) {
	var found []byte
	ok := false
	_ = Object(data, func(k, v []byte) bool {
		if string(k) == key {
			found, ok = v, true
			return true
		}
		return false
	})
	return found, ok
}

// Time returns the value of a raw JSON string holding an RFC 3339 time
// ("2006-01-02T15:04:05.999999999Z07:00"), and false if raw is not one.
// Unlike time.Parse, it allocates nothing.
func Time(raw []byte) (time.Time, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return time.Time{}, false
	}
	b := raw[1 : len(raw)-1]
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := 100000000
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			nsec += int(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // February 30th and the like
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}
