package ui

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"
)

// A small server-side SVG line-chart renderer: time on x, one value axis,
// several series, and markers (decisions) on the time axis. The SVG is
// self-contained (no script, no external style) and accessible: a title,
// a description and a <title> on every marker.

// Point is one value at a time (Unix ms).
type Point struct {
	T int64
	V float64
}

// Series is one line.
type Series struct {
	Name string
	// Class is the CSS class of the line (colour, dash), s1…s6.
	Class string
	// Step draws a step line (replicas) instead of straight segments.
	Step   bool
	Points []Point
}

// Marker is a vertical tick on the time axis, linking to its explanation.
type Marker struct {
	T     int64
	Label string
	Href  string
	Class string
}

// Chart is one chart.
type Chart struct {
	Title string
	// Desc describes the chart for screen readers.
	Desc          string
	Width, Height int
	YLabel        string
	Series        []Series
	Markers       []Marker
}

const (
	padLeft, padRight, padTop, padBottom = 56, 12, 28, 44
)

// SVG renders the chart.
func (c Chart) SVG() template.HTML {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 1080
	}
	if h <= 0 {
		h = 240
	}
	// The legend wraps onto as many rows as it needs below the time axis.
	legendRows, lx := 1, padLeft
	for _, s := range c.Series {
		sw := 30 + 7*len(s.Name)
		if lx+sw > w-padRight && lx > padLeft {
			legendRows++
			lx = padLeft
		}
		lx += sw
	}
	h += 16 * (legendRows - 1)
	var b strings.Builder
	id := slug(c.Title)
	fmt.Fprintf(&b, `<svg class="chart" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-labelledby="%s-t %s-d" xmlns="http://www.w3.org/2000/svg">`, w, h, w, h, id, id)
	fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id, esc(c.Title), id, esc(c.Desc))
	fmt.Fprintf(&b, `<text class="ctitle" x="%d" y="16">%s</text>`, padLeft, esc(c.Title))

	t0, t1, v0, v1, ok := c.bounds()
	if !ok {
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d">no data yet</text></svg>`, w/2-40, h/2)
		return template.HTML(b.String())
	}
	pw, ph := float64(w-padLeft-padRight), float64(h-padTop-padBottom-16*(legendRows-1))
	x := func(t int64) float64 { return float64(padLeft) + pw*float64(t-t0)/float64(max(t1-t0, 1)) }
	y := func(v float64) float64 { return float64(padTop) + ph*(1-(v-v0)/(v1-v0)) }

	// Grid and value axis.
	for _, v := range niceTicks(v0, v1, 5) {
		yy := y(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padLeft, w-padRight, yy, yy)
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, yy+4, fmtNum(v))
	}
	if c.YLabel != "" {
		fmt.Fprintf(&b, `<text class="axis" x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, padTop+int(ph/2), padTop+int(ph/2), esc(c.YLabel))
	}
	// Time axis.
	for _, t := range timeTicks(t0, t1, 6) {
		xx := x(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"/>`, xx, xx, padTop, float64(padTop)+ph)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, xx, float64(padTop)+ph+16, time.UnixMilli(t).UTC().Format("15:04"))
	}
	fmt.Fprintf(&b, `<line class="axisline" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padLeft, w-padRight, float64(padTop)+ph, float64(padTop)+ph)

	// Series.
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		pts := s.Points
		if s.Step {
			// A step line holds its last value to the end of the chart.
			pts = append(append([]Point(nil), pts...), Point{t1, pts[len(pts)-1].V})
		}
		// A gap (no point for more than twice the usual spacing) breaks
		// the line instead of drawing a slope nobody measured.
		gap := int64(math.MaxInt64)
		if len(pts) > 2 {
			ds := make([]int64, 0, len(pts)-1)
			for i := 1; i < len(pts); i++ {
				ds = append(ds, pts[i].T-pts[i-1].T)
			}
			slices.Sort(ds)
			gap = max(2*ds[len(ds)/2], 1)
		}
		var segs []string
		var p strings.Builder
		flush := func() {
			if p.Len() > 0 {
				segs = append(segs, strings.TrimSpace(p.String()))
				p.Reset()
			}
		}
		for i, pt := range pts {
			if math.IsNaN(pt.V) || math.IsInf(pt.V, 0) {
				flush()
				continue
			}
			if i > 0 && !s.Step && pt.T-pts[i-1].T > gap {
				flush()
			}
			if s.Step && i > 0 {
				fmt.Fprintf(&p, "%.1f,%.1f ", x(pt.T), y(pts[i-1].V))
			}
			fmt.Fprintf(&p, "%.1f,%.1f ", x(pt.T), y(pt.V))
		}
		flush()
		for _, seg := range segs {
			fmt.Fprintf(&b, `<polyline class="line %s" data-series="%s" points="%s"><title>%s</title></polyline>`, s.Class, esc(s.Name), seg, esc(s.Name))
		}
	}
	// Markers.
	for _, m := range c.Markers {
		xx := x(m.T)
		open, closeTag := "", ""
		if m.Href != "" {
			open, closeTag = fmt.Sprintf(`<a href="%s">`, esc(m.Href)), "</a>"
		}
		fmt.Fprintf(&b, `%s<g class="marker %s"><line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"/><path d="M%.1f %.1fl-5 -8h10z"/><title>%s</title></g>%s`,
			open, m.Class, xx, xx, padTop, float64(padTop)+ph, xx, float64(padTop)+ph, esc(m.Label), closeTag)
	}
	// Legend.
	lx, ly := padLeft, h-10-16*(legendRows-1)
	for _, s := range c.Series {
		sw := 30 + 7*len(s.Name)
		if lx+sw > w-padRight && lx > padLeft {
			lx, ly = padLeft, ly+16
		}
		fmt.Fprintf(&b, `<g class="legend"><line class="line %s" x1="%d" x2="%d" y1="%d" y2="%d"/><text x="%d" y="%d">%s</text></g>`,
			s.Class, lx, lx+18, ly, ly, lx+22, ly+4, esc(s.Name))
		lx += sw
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (c Chart) bounds() (t0, t1 int64, v0, v1 float64, ok bool) {
	t0, t1 = math.MaxInt64, math.MinInt64
	v0, v1 = math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				continue
			}
			t0, t1 = min(t0, p.T), max(t1, p.T)
			v0, v1 = min(v0, p.V), max(v1, p.V)
			ok = true
		}
	}
	if !ok {
		return
	}
	for _, m := range c.Markers {
		t0, t1 = min(t0, m.T), max(t1, m.T)
	}
	if v0 > 0 {
		v0 = 0 // loads and replicas read best from zero
	}
	if v1 <= v0 {
		v1 = v0 + 1
	}
	ticks := niceTicks(v0, v1, 5)
	v1 = max(v1, ticks[len(ticks)-1])
	return
}

// niceTicks returns about n round values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	span := hi - lo
	if span <= 0 {
		return []float64{lo}
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Floor(lo/step) * step; v <= hi+step*0.999; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

// timeTicks returns about n round times (whole minutes) within [t0, t1].
func timeTicks(t0, t1 int64, n int) []int64 {
	span := time.Duration(t1-t0) * time.Millisecond
	step := time.Minute
	for _, s := range []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		step = s
		if span/s <= time.Duration(n) {
			break
		}
	}
	ms := step.Milliseconds()
	var out []int64
	for t := (t0 + ms - 1) / ms * ms; t <= t1; t += ms {
		out = append(out, t)
	}
	return out
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "chart"
	}
	return strings.TrimSuffix(b.String(), "-")
}
