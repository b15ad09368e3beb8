package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// clearScreen moves the cursor home and clears the terminal, so each frame
// replaces the last one.
const clearScreen = "\x1b[H\x1b[2J"

// maxNote caps the length of problem and error lines, which quote API
// server messages of any length.
const maxNote = 140

// Render draws a frame as text. With tty it starts with the ANSI sequence
// that clears the screen; without, frames are meant to be appended to a log
// and start with a separator line instead.
func Render(s Snapshot, tty bool) string {
	var b strings.Builder
	if tty {
		b.WriteString(clearScreen)
	} else {
		b.WriteString("----\n")
	}
	fmt.Fprintf(&b, "hpa-signals demo  %s", s.Time.Format("15:04:05"))
	if s.Step != "" {
		fmt.Fprintf(&b, "  %s", s.Step)
	}
	b.WriteString("\n")
	if s.Expect != "" {
		fmt.Fprintf(&b, "  expect: %s\n", s.Expect)
	}
	b.WriteString("\n")

	if len(s.HPAs) == 0 {
		b.WriteString("no HPAs yet\n")
	} else {
		b.WriteString(hpaTable(s))
	}
	b.WriteString("\n")
	b.WriteString(adapterLine(s.Adapter))
	b.WriteString("\n")
	for _, e := range s.Errors {
		fmt.Fprintf(&b, "! %s\n", truncate(e, maxNote))
	}
	if s.Hint != "" {
		b.WriteString("\n" + strings.TrimRight(s.Hint, "\n") + "\n")
	}
	return b.String()
}

// hpaTable is one row per HPA metric, with the HPA's replicas and last
// scaling on its first row and its problem, if any, on a line below.
func hpaTable(s Snapshot) string {
	namespaces := map[string]bool{}
	for _, h := range s.HPAs {
		namespaces[h.Namespace] = true
	}
	rows := [][]string{{"NAME", "METRIC", "VALUE/TARGET", "REPLICAS", "LAST SCALE"}}
	notes := map[int]string{} // row index -> note printed after it
	for _, h := range s.HPAs {
		name := h.Name
		if len(namespaces) > 1 {
			name = h.Key()
		}
		replicas := strconv.Itoa(int(h.CurrentReplicas))
		if h.DesiredReplicas != h.CurrentReplicas {
			replicas += "→" + strconv.Itoa(int(h.DesiredReplicas))
		}
		replicas += fmt.Sprintf(" (%d-%d)", h.MinReplicas, h.MaxReplicas)
		last := lastScale(h, s.Time)
		metrics := h.Metrics
		if len(metrics) == 0 {
			metrics = []MetricView{{}}
		}
		for i, m := range metrics {
			row := []string{"", metricLabel(m), valueTarget(m), "", ""}
			if i == 0 {
				row[0], row[3], row[4] = name, replicas, last
			}
			rows = append(rows, row)
		}
		if h.Problem != "" {
			notes[len(rows)-1] = "  ! " + truncate(h.Problem, maxNote)
		}
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for ri, r := range rows {
		var line strings.Builder
		for i, cell := range r {
			line.WriteString(cell)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
		if n, ok := notes[ri]; ok {
			b.WriteString(n + "\n")
		}
	}
	return b.String()
}

func metricLabel(m MetricView) string {
	if m.Type == "" {
		return "(no metrics)"
	}
	return m.Name + " (" + m.Type + ")"
}

// valueTarget reads like kubectl get hpa: "148/50 avg", "<unknown>/250m",
// "63%/80%", and "-/500 avg" for an average over zero replicas.
func valueTarget(m MetricView) string {
	if m.Type == "" {
		return ""
	}
	cur := "<unknown>"
	switch {
	case m.AtZero:
		cur = "-"
	case m.Current == nil:
	case m.TargetType == "Utilization":
		cur = formatNumber(*m.Current) + "%"
	default:
		cur = formatNumber(*m.Current)
	}
	switch m.TargetType {
	case "Utilization":
		return cur + "/" + formatNumber(m.Target) + "%"
	case "AverageValue":
		return cur + "/" + formatNumber(m.Target) + " avg"
	default:
		return cur + "/" + formatNumber(m.Target)
	}
}

// lastScale is "12s ago: New size: 3; reason: ...", "never" or the event
// alone when the HPA has no lastScaleTime.
func lastScale(h HPAView, now time.Time) string {
	var parts []string
	if !h.LastScaleTime.IsZero() {
		parts = append(parts, formatAge(now.Sub(h.LastScaleTime))+" ago")
	}
	if h.LastScaleEvent != "" {
		parts = append(parts, h.LastScaleEvent)
	}
	if len(parts) == 0 {
		return "never"
	}
	return strings.Join(parts, ": ")
}

// adapterLine is the footer: the adapter's request rate, cache hit ratio
// and mean source latency over the last interval.
func adapterLine(a AdapterView) string {
	if a.Err != "" {
		return "adapter: " + truncate(a.Err, maxNote)
	}
	req, hits := "-", "-"
	if a.RequestsPerSecond != nil {
		req = formatNumber(*a.RequestsPerSecond)
	}
	if a.CacheHitRatio != nil {
		hits = strconv.FormatFloat(*a.CacheHitRatio*100, 'f', 0, 64) + "%"
	}
	latency := "-"
	if len(a.SourceLatency) > 0 {
		parts := make([]string, 0, len(a.SourceLatency))
		for _, l := range a.SourceLatency {
			parts = append(parts, l.Source+" "+formatLatency(l.Mean))
		}
		latency = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("adapter: %s req/s   cache hits %s   source latency %s", req, hits, latency)
}

// formatNumber prints a value with about three significant digits and no
// exponent: 0.253, 12.5, 148, 12.3k.
func formatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case a >= 1e6:
		return trimZeros(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + "M"
	case a >= 1e4:
		return trimZeros(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return trimZeros(strconv.FormatFloat(v, 'f', 1, 64))
	case a >= 1:
		return trimZeros(strconv.FormatFloat(v, 'f', 2, 64))
	default:
		return trimZeros(strconv.FormatFloat(v, 'f', 3, 64))
	}
}

func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

func formatLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// formatAge is a short age like kubectl's: 45s, 3m12s, 2h5m.
func formatAge(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
