package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// syntheticRun feeds tl a 4-minute run of three HPAs sampled every 2s: a
// QPS wave, a latency spike and a Kafka burst that drains, each with its
// HPA following a few samples later, and the first samples unknown (no
// data yet), as in a real run.
func syntheticRun(tl *Timeline) {
	const n = 120
	wave := func(i, from, to int) float64 { // 0..1..0 between from and to
		if i < from || i > to {
			return 0
		}
		return math.Sin(math.Pi * float64(i-from) / float64(to-from))
	}
	replicasFor := func(v, per float64, lo, hi int32) int32 {
		return min(max(int32(math.Ceil(v/per)), lo), hi)
	}
	var qpsRep, latRep, lagRep int32 = 2, 2, 1
	for i := range n {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		qps := 40 + 220*wave(i, 10, 80)
		lat := 0.03 + 0.6*wave(i, 40, 70)
		lag := 6000 * math.Max(0, 1-float64(i-85)/25)
		if i < 85 {
			lag = 0
		}
		if i%4 == 0 { // the HPA acts every few samples
			qpsRep = replicasFor(qps, 50, 2, 20)
			latRep = min(max(latRep, replicasFor(lat*float64(latRep), 0.25, 2, 10)), 10)
			if lat < 0.1 {
				latRep = 2
			}
			lagRep = replicasFor(lag, 1000, 1, 12)
		}
		known := func(v float64) *float64 {
			if i < 3 {
				return nil
			}
			return ptrTo(v)
		}
		tl.Record(Snapshot{Time: at, HPAs: []HPAView{
			{Namespace: "demo", Name: "sample-app-qps", CurrentReplicas: qpsRep,
				Metrics: []MetricView{{Type: "Pods", Name: "http_requests_per_second", TargetType: "AverageValue", Target: 50, Current: known(qps / float64(qpsRep))}}},
			{Namespace: "demo", Name: "sample-app-latency-p99", CurrentReplicas: latRep,
				Metrics: []MetricView{{Type: "Object", Name: "http_request_duration_seconds_p99", TargetType: "Value", Target: 0.25, Current: known(lat)}}},
			{Namespace: "demo", Name: "billing-consumer", CurrentReplicas: lagRep,
				Metrics: []MetricView{{Type: "External", Name: "kafka_consumer_lag", TargetType: "AverageValue", Target: 1000, Current: known(lag / float64(lagRep))}}},
			{Namespace: "demo", Name: "no-metrics"}, // not drawn
		}})
		switch i {
		case 0:
			tl.Mark(at, "Baseline: light load everywhere")
		case 10:
			tl.Mark(at, "QPS wave: rising to 250 req/s & falling")
		case 40:
			tl.Mark(at, "Latency spike: 600 req/s <on 2 pods>")
		case 85:
			tl.Mark(at, "Kafka burst: 6000 messages to demo.orders")
		}
	}
}

func TestTimelineSVGGolden(t *testing.T) {
	var tl Timeline
	syntheticRun(&tl)
	var b bytes.Buffer
	if err := tl.WriteSVG(&b, "hpa-signals demo, 2025-11-21 14:00 UTC"); err != nil {
		t.Fatal(err)
	}
	golden(t, "timeline.golden.svg", b.String())
}

func TestTimelineSVGStructure(t *testing.T) {
	var tl Timeline
	syntheticRun(&tl)
	var b bytes.Buffer
	if err := tl.WriteSVG(&b, `demo "run" <1> & more`); err != nil {
		t.Fatal(err)
	}

	// Well-formed XML, and what is in it.
	dec := xml.NewDecoder(&b)
	panels := 0
	polylines := map[string]int{}
	markers, texts := 0, []string{}
	var root string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local + " " + el.Name.Space
			}
			class := attr(el, "class")
			switch {
			case el.Name.Local == "g" && class == "panel":
				panels++
			case el.Name.Local == "polyline":
				polylines[class]++
				if pts := strings.Fields(attr(el, "points")); len(pts) < 2 {
					t.Errorf("%s polyline with %d points", class, len(pts))
				}
			case el.Name.Local == "line" && class == "marker":
				markers++
			case el.Name.Local == "image" || el.Name.Local == "script" || el.Name.Local == "use":
				t.Errorf("<%s> in a self-contained SVG", el.Name.Local)
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if root != "svg http://www.w3.org/2000/svg" {
		t.Errorf("root element = %q, want svg in the SVG namespace", root)
	}
	if panels != 3 {
		t.Errorf("%d panels, want 3 (one per HPA with a metric)", panels)
	}
	// One target and one replicas line per panel; the signal line per
	// panel starts after the unknown samples, in one piece.
	want := map[string]int{"target": 3, "replicas": 3, "signal": 3}
	for class, n := range want {
		if polylines[class] != n {
			t.Errorf("%d %s polylines, want %d", polylines[class], class, n)
		}
	}
	if markers != 4*3 {
		t.Errorf("%d marker lines, want 12 (4 markers in 3 panels)", markers)
	}
	all := strings.Join(texts, "|")
	for _, s := range []string{`demo "run" <1> & more`, "demo/sample-app-qps", "replicas", "Latency spike: 600 req/s <on 2 pods>", "3:30", "+2:50"} {
		if !strings.Contains(all, s) {
			t.Errorf("text %q missing from the SVG", s)
		}
	}
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestTimelineGapsAndEmpty(t *testing.T) {
	var tl Timeline
	if err := tl.WriteSVG(io.Discard, "x"); !errors.Is(err, errNoSamples) {
		t.Errorf("WriteSVG of an empty timeline = %v, want errNoSamples", err)
	}
	values := []*float64{ptrTo(1.0), ptrTo(2.0), nil, nil, ptrTo(3.0), nil, ptrTo(4.0), ptrTo(5.0)}
	for i, v := range values {
		tl.Record(Snapshot{Time: t0.Add(time.Duration(i) * time.Second), HPAs: []HPAView{{
			Namespace: "demo", Name: "a", CurrentReplicas: int32(i),
			Metrics: []MetricView{{Type: "External", Name: "m", TargetType: "Value", Target: 2, Current: v}},
		}}})
	}
	series := tl.Series()
	if len(series) != 1 || len(series[0].Samples) != len(values) {
		t.Fatalf("Series() = %+v", series)
	}
	segs := signalSegments(series[0].Samples)
	if len(segs) != 3 || len(segs[0]) != 2 || len(segs[1]) != 1 || len(segs[2]) != 2 {
		t.Errorf("segments = %v, want [1 2] [3] [4 5]", segs)
	}
	var b bytes.Buffer
	if err := tl.WriteSVG(&b, "gaps"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), `class="signal"`); n != 3 {
		t.Errorf("%d signal polylines, want 3 (split at unknown values)", n)
	}
}

func TestNiceStep(t *testing.T) {
	tests := []struct{ in, want float64 }{{0, 1}, {0.07, 0.1}, {0.12, 0.2}, {2.2, 2.5}, {30, 50}, {68, 100}, {1100, 2000}}
	for _, tt := range tests {
		if got := niceStep(tt.in); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
