package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// binaryVersion is the first byte of [Event.MarshalBinary]'s encoding.
const binaryVersion = 1

// ErrBadEncoding is returned, wrapped, by [Event.UnmarshalBinary] for bytes
// that are not an encoding made by [Event.MarshalBinary].
var ErrBadEncoding = errors.New("event: bad binary encoding")

// MarshalBinary encodes the event byte-exact: every string and the payload
// keep their bytes whatever they hold (NUL, invalid UTF-8), times keep
// their instant to the nanosecond (not their location), a nil Meta stays
// nil and a nil Payload comes back nil. Durable backends store events in
// this form, so that an event adopted after a crash is the event that was
// acknowledged. Meta is written in key order, so equal events encode
// equally. It never returns an error.
func (e Event) MarshalBinary() ([]byte, error) {
	n := 1 + 1 + 3*binary.MaxVarintLen64 + len(e.ID) + len(e.Source) + len(e.Type) +
		2*(1+binary.MaxVarintLen64) + 1 + binary.MaxVarintLen64 + len(e.Payload) + binary.MaxVarintLen64
	for k, v := range e.Meta {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, binaryVersion, byte(e.Via))
	b = appendString(b, e.ID)
	b = appendString(b, e.Source)
	b = appendString(b, e.Type)
	b = appendTime(b, e.Time)
	b = appendTime(b, e.Received)
	if e.Payload == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(len(e.Payload)))
		b = append(b, e.Payload...)
	}
	if e.Meta == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		keys := make([]string, 0, len(e.Meta))
		for k := range e.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, e.Meta[k])
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime writes a zero time as a single 0, any other as 1 and its
// Unix nanoseconds (or seconds and nanoseconds when those overflow).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// UnmarshalBinary decodes what [Event.MarshalBinary] encoded into e. It
// returns an error wrapping [ErrBadEncoding] for anything else; e is then
// unchanged.
func (e *Event) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	var out Event
	if v := d.byte(); v != binaryVersion {
		if d.err == nil {
			d.fail("version %d", v)
		}
		return d.err
	}
	out.Via = Via(d.byte())
	out.ID = d.string()
	out.Source = d.string()
	out.Type = d.string()
	out.Time = d.time()
	out.Received = d.time()
	switch d.byte() {
	case 0:
	case 1:
		n := d.length()
		out.Payload = slices.Clone(d.take(n))
		if out.Payload == nil && d.err == nil {
			out.Payload = []byte{}
		}
	default:
		d.fail("payload flag")
	}
	switch d.byte() {
	case 0:
	case 1:
		n := d.length()
		if d.err == nil && n > len(d.b) { // each pair takes at least 2 bytes
			d.fail("meta count %d", n)
		}
		if d.err == nil {
			out.Meta = make(map[string]string, n)
		}
		for range n {
			if d.err != nil {
				break
			}
			k := d.string()
			out.Meta[k] = d.string()
		}
	default:
		d.fail("meta flag")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	*e = out
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEncoding, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) length() int {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.fail("length")
		return 0
	}
	d.b = d.b[k:]
	return int(n)
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.take(d.length())) }

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail("time flag")
		return time.Time{}
	}
	if d.err != nil {
		return time.Time{}
	}
	sec, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail("time")
		return time.Time{}
	}
	d.b = d.b[k:]
	nsec, k := binary.Uvarint(d.b)
	if k <= 0 || nsec >= 1e9 {
		d.fail("time")
		return time.Time{}
	}
	d.b = d.b[k:]
	if sec == math.MinInt64 {
		d.fail("time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec))
}
