package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"time"
)

var colors = map[string]string{"polling": "#e4572e", "webhooks": "#17a2b8", "hybrid": "#5b3f9e", "relay": "#2a9d3f", "thin": "#f4a259"}

// chart draws the report as a self-contained SVG: on the left, the
// distribution of delivery latency per consumer (a CDF on a log scale); on
// the right, HTTP requests per second over the run.
func chart(r *Report) []byte {
	const (
		w, h           = 1010, 470
		top, bottom    = 70, 110
		panelW, margin = 400, 70
	)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`)
	c := r.Config
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="17" font-weight="600" fill="#222">Polling vs webhooks vs hybrid vs relay vs thin + fetch — %d events over %s</text>`, margin, r.Emitted, c.Duration)
	fmt.Fprintf(&b, `<text x="%d" y="48" fill="#555">poll every %s · %.0f%% of webhook deliveries lost, %d retries · hybrid reconciles every %s · seed %d</text>`,
		margin, c.Interval, 100*c.Drop, c.Retries, c.Reconcile, c.Seed)

	// Left panel: latency CDF, x from 1 ms to the largest latency (log10).
	x0, y0, pw, ph := float64(margin), float64(top), float64(panelW), float64(h-top-bottom)
	maxMS := 10.0
	for _, cr := range r.Consumers {
		maxMS = math.Max(maxMS, cr.LatencyMS.Max)
	}
	lo, hi := 0.0, math.Ceil(math.Log10(maxMS))
	xOf := func(ms float64) float64 {
		l := math.Log10(math.Max(ms, 1))
		return x0 + (l-lo)/(hi-lo)*pw
	}
	yOf := func(f float64) float64 { return y0 + ph - f*ph }
	axes(&b, x0, y0, pw, ph)
	for e := lo; e <= hi; e++ {
		x := xOf(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, x, y0, x, y0+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%s</text>`, x, y0+ph+16, msLabel(math.Pow(10, e)))
	}
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
		y := yOf(f)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, x0, y, x0+pw, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%.0f%%</text>`, x0-6, y+4, 100*f)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">delivery latency (log scale)</text>`, x0+pw/2, y0+ph+38)
	fmt.Fprintf(&b, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle" fill="#333">share of emitted events delivered</text>`, x0-48, y0+ph/2)
	// Draw hybrid first and webhooks dashed on top: they overlap until
	// webhooks stop at what the network delivered.
	for _, cr := range drawOrder(r.Consumers) {
		var pts bytes.Buffer
		n := float64(r.Emitted)
		for i, d := range cr.latencies {
			ms := float64(d.Microseconds()) / 1000
			fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(ms), yOf(float64(i)/n))
			fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(ms), yOf(float64(i+1)/n))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, colors[cr.Name], dash(cr.Name), pts.String())
	}

	// Right panel: requests per second.
	x1 := x0 + pw + 110
	axes(&b, x1, y0, pw, ph)
	secs := int(math.Ceil(durSeconds(r.Elapsed)))
	maxReq := int64(1)
	for _, cr := range r.Consumers {
		for _, v := range cr.perSecond {
			maxReq = max(maxReq, v)
		}
	}
	maxReq = niceCeil(maxReq)
	xs := func(s float64) float64 { return x1 + s/float64(max(secs, 1))*pw }
	ys := func(v float64) float64 { return y0 + ph - v/float64(maxReq)*ph }
	for i := 0; i <= 4; i++ {
		v := float64(maxReq) * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, x1, ys(v), x1+pw, ys(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%.0f</text>`, x1-6, ys(v)+4, v)
	}
	step := max(1, secs/10)
	for s := 0; s <= secs; s += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%ds</text>`, xs(float64(s)), y0+ph+16, s)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">time since start</text>`, x1+pw/2, y0+ph+38)
	fmt.Fprintf(&b, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle" fill="#333">HTTP requests per second</text>`, x1-44, y0+ph/2)
	for _, cr := range drawOrder(r.Consumers) {
		var pts bytes.Buffer
		for s := 0; s < secs; s++ {
			v := float64(cr.perSecond[s])
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", xs(float64(s)), ys(v), xs(float64(s+1)), ys(v))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s stroke-linejoin="round" points="%s"/>`, colors[cr.Name], dash(cr.Name), pts.String())
	}

	// Legend, in rows that fit the width.
	lx, ly := x0, h-38
	for _, cr := range r.Consumers {
		label := fmt.Sprintf("%s · p50 %s · %d missed · %d req", cr.Name, dur(cr.LatencyMS.P50), cr.Missed, cr.Requests)
		width := 28 + 6.1*float64(len([]rune(label))) + 26
		if lx > x0 && lx+width > w-10 {
			lx, ly = x0, ly+20
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="3"%s/>`, lx, ly, lx+22, ly, colors[cr.Name], dash(cr.Name))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%s</text>`, lx+28, ly+4, html.EscapeString(label))
		lx += width
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

func drawOrder(cs []ConsumerReport) []ConsumerReport {
	var out []ConsumerReport
	for _, name := range []string{"thin", "hybrid", "polling", "relay", "webhooks"} {
		for _, c := range cs {
			if c.Name == name {
				out = append(out, c)
			}
		}
	}
	return out
}

func dash(name string) string {
	if name == "webhooks" {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

func axes(b *bytes.Buffer, x, y, w, h float64) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#fafafa" stroke="#ccc"/>`, x, y, w, h)
}

func msLabel(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%gs", ms/1000)
	default:
		return fmt.Sprintf("%gms", ms)
	}
}

func durSeconds(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 1
	}
	return d.Seconds()
}

func niceCeil(v int64) int64 {
	for _, n := range []int64{1, 2, 4, 5, 10, 20, 25, 40, 50, 100, 200, 250, 500, 1000} {
		if v <= n {
			return n
		}
	}
	return ((v + 999) / 1000) * 1000
}
