package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sample is one HPA's state at one moment.
type Sample struct {
	At time.Time
	// Value is the HPA's first metric; NaN when the HPA reported none.
	Value, Target float64
	Replicas      int32
}

// Series is the samples of one HPA, oldest first.
type Series struct {
	Key     string // namespace/name
	Metric  string // "http_requests_per_second (Pods, AverageValue)"
	Samples []Sample
}

// Marker is a labelled moment, e.g. the start of a story step.
type Marker struct {
	At    time.Time
	Label string
}

// Timeline records HPA samples and story markers and draws them as an SVG.
// Its methods are safe for concurrent use. The zero value is empty and
// ready.
type Timeline struct {
	mu      sync.Mutex
	series  map[string]*Series
	order   []string
	markers []Marker
}

// errNoSamples is returned by WriteSVG when nothing was recorded.
var errNoSamples = errors.New("timeline: no samples recorded")

// Record appends one sample per HPA of s that has at least one metric.
func (t *Timeline) Record(s Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.series == nil {
		t.series = map[string]*Series{}
	}
	for _, h := range s.HPAs {
		if len(h.Metrics) == 0 {
			continue
		}
		m := h.Metrics[0]
		ser := t.series[h.Key()]
		if ser == nil {
			ser = &Series{Key: h.Key(), Metric: fmt.Sprintf("%s (%s, %s)", m.Name, m.Type, m.TargetType)}
			t.series[h.Key()] = ser
			t.order = append(t.order, h.Key())
		}
		v := math.NaN()
		if m.Current != nil {
			v = *m.Current
		}
		ser.Samples = append(ser.Samples, Sample{At: s.Time, Value: v, Target: m.Target, Replicas: h.CurrentReplicas})
	}
}

// Mark records a labelled moment, drawn as a numbered line in every panel
// and listed under the panels.
func (t *Timeline) Mark(at time.Time, label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.markers = append(t.markers, Marker{At: at, Label: label})
}

// Series returns a copy of the recorded series, sorted by key.
func (t *Timeline) Series() []Series {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Series, 0, len(t.order))
	for _, k := range t.order {
		s := *t.series[k]
		s.Samples = append([]Sample(nil), s.Samples...)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Layout of the picture, in SVG user units (pixels).
const (
	svgWidth    = 960
	marginLeft  = 72
	marginRight = 64
	headerH     = 74 // title and legend
	panelH      = 210
	plotTop     = 34 // panel title above the plot
	plotH       = 140
	plotW       = svgWidth - marginLeft - marginRight
	markerLineH = 18

	colorSignal   = "#1f77b4"
	colorTarget   = "#d62728"
	colorReplicas = "#2ca02c"
	colorMarker   = "#888888"
	colorGrid     = "#e6e6e6"
)

// WriteSVG draws one panel per HPA: its signal and target on the left axis,
// its replica count as a step line on the right axis, time since the first
// sample on x; the story markers as numbered vertical lines, listed below.
// The SVG is self-contained (no fonts, scripts or images to fetch).
func (t *Timeline) WriteSVG(w io.Writer, title string) error {
	series := t.Series()
	t.mu.Lock()
	markers := append([]Marker(nil), t.markers...)
	t.mu.Unlock()
	if len(series) == 0 {
		return errNoSamples
	}
	start, end := timeSpan(series)
	span := max(end.Sub(start), time.Second)

	height := headerH + len(series)*panelH + 24 + 18*len(markers)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="18" font-weight="bold">%s</text>`+"\n", marginLeft, esc(title))
	legend(&b)

	x := func(at time.Time) float64 { return marginLeft + float64(at.Sub(start))/float64(span)*plotW }
	for i, s := range series {
		panel(&b, s, headerH+i*panelH, x, span, start, markers)
	}
	y := headerH + len(series)*panelH + 8
	for i, m := range markers {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#444">%d  +%s  %s</text>`+"\n",
			marginLeft, y+18*i+12, i+1, clockLabel(m.At.Sub(start)), esc(m.Label))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func legend(b *strings.Builder) {
	items := []struct{ color, dash, label string }{
		{colorSignal, "", "signal (left axis)"},
		{colorTarget, "6 4", "target (left axis)"},
		{colorReplicas, "", "replicas (right axis)"},
		{colorMarker, "3 3", "story step"},
	}
	x := marginLeft
	for _, it := range items {
		dash := ""
		if it.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, it.dash)
		}
		fmt.Fprintf(b, `<line x1="%d" y1="52" x2="%d" y2="52" stroke="%s" stroke-width="2.5"%s/>`+"\n", x, x+26, it.color, dash)
		fmt.Fprintf(b, `<text x="%d" y="56">%s</text>`+"\n", x+32, esc(it.label))
		x += 48 + 7*len(it.label)
	}
}

func panel(b *strings.Builder, s Series, top int, x func(time.Time) float64, span time.Duration, start time.Time, markers []Marker) {
	vMax, rMax := 0.0, int32(1)
	for _, smp := range s.Samples {
		if !math.IsNaN(smp.Value) {
			vMax = math.Max(vMax, smp.Value)
		}
		vMax = math.Max(vMax, smp.Target)
		rMax = max(rMax, smp.Replicas)
	}
	// Both axes get the same number of intervals, so the grid lines serve
	// both.
	vStep := niceStep(vMax * 1.1 / 4)
	intervals := max(int32(math.Ceil(vMax*1.1/vStep)), 1)
	vTop := vStep * float64(intervals)
	rStep := max(int32(math.Ceil(float64(rMax+1)/float64(intervals))), 1)
	rTop := rStep * intervals
	py0 := float64(top + plotTop)
	yv := func(v float64) float64 { return py0 + plotH - v/vTop*plotH }
	yr := func(r int32) float64 { return py0 + plotH - float64(r)/float64(rTop)*plotH }

	fmt.Fprintf(b, `<g class="panel" id="%s">`+"\n", esc(s.Key))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`, marginLeft, top+20, esc(s.Key))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" fill="#555" text-anchor="end">%s</text>`+"\n", svgWidth-marginRight, top+20, esc(s.Metric))
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%d" height="%d" fill="#fafafa" stroke="#cccccc"/>`+"\n", marginLeft, py0, plotW, plotH)
	for v := 0.0; v <= vTop+vStep/2; v += vStep {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`, marginLeft, yv(v), svgWidth-marginRight, yv(v), colorGrid)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", marginLeft-6, yv(v)+4, colorSignal, formatNumber(v))
	}
	for r := int32(0); r <= rTop; r += rStep {
		fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="%s">%d</text>`+"\n", svgWidth-marginRight+6, yr(r)+4, colorReplicas, r)
	}
	fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" fill="%s" text-anchor="end">replicas</text>`+"\n", svgWidth-4, py0-6, colorReplicas)
	tStep := timeStep(span)
	for d := time.Duration(0); d <= span; d += tStep {
		xx := x(start.Add(d))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, xx, py0+plotH, xx, py0+plotH+4, "#999")
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%s</text>`+"\n", xx, py0+plotH+17, clockLabel(d))
	}
	for i, m := range markers {
		xx := math.Min(math.Max(x(m.At), marginLeft), marginLeft+plotW)
		fmt.Fprintf(b, `<line class="marker" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3 3"/>`, xx, py0-2, xx, py0+plotH, colorMarker)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%d</text>`+"\n", xx+2, py0+9, colorMarker, i+1)
	}

	// Target and replicas hold their value until the next sample (steps);
	// the signal is drawn as measured, with gaps where it was unknown.
	var target, replicas []string
	for i, smp := range s.Samples {
		if i > 0 {
			target = append(target, pt(x(smp.At), yv(s.Samples[i-1].Target)))
			replicas = append(replicas, pt(x(smp.At), yr(s.Samples[i-1].Replicas)))
		}
		target = append(target, pt(x(smp.At), yv(smp.Target)))
		replicas = append(replicas, pt(x(smp.At), yr(smp.Replicas)))
	}
	// Drawn bottom to top: replicas, then the dashed target, which would
	// vanish under a replica line at the same height, then the signal.
	polyline(b, "replicas", colorReplicas, ` stroke-linejoin="miter"`, replicas)
	polyline(b, "target", colorTarget, ` stroke-dasharray="6 4"`, target)
	for _, seg := range signalSegments(s.Samples) {
		var pts []string
		for _, smp := range seg {
			pts = append(pts, pt(x(smp.At), yv(smp.Value)))
		}
		polyline(b, "signal", colorSignal, "", pts)
	}
	b.WriteString("</g>\n")
}

func polyline(b *strings.Builder, class, color, extra string, pts []string) {
	if len(pts) == 1 { // a lone point: draw a dot's worth of line
		pts = append(pts, pts[0])
	}
	fmt.Fprintf(b, `<polyline class="%s" fill="none" stroke="%s" stroke-width="2.5"%s points="%s"/>`+"\n",
		class, color, extra, strings.Join(pts, " "))
}

// signalSegments splits samples at unknown values.
func signalSegments(samples []Sample) [][]Sample {
	var segs [][]Sample
	var cur []Sample
	for _, s := range samples {
		if math.IsNaN(s.Value) {
			if len(cur) > 0 {
				segs = append(segs, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, s)
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}

func timeSpan(series []Series) (start, end time.Time) {
	for _, s := range series {
		for _, smp := range s.Samples {
			if start.IsZero() || smp.At.Before(start) {
				start = smp.At
			}
			if smp.At.After(end) {
				end = smp.At
			}
		}
	}
	return start, end
}

// niceStep rounds raw up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

// timeStep picks a tick interval giving at most 10 ticks.
func timeStep(span time.Duration) time.Duration {
	for _, d := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute} {
		if span/d <= 10 {
			return d
		}
	}
	return time.Hour
}

// clockLabel prints an elapsed time as m:ss.
func clockLabel(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func pt(x, y float64) string { return fmt.Sprintf("%.1f,%.1f", x, y) }

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func esc(s string) string { return xmlEscaper.Replace(s) }
