package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
)

// query runs an instant query with the plain HTTP API and returns the
// result vector's labels and values.
func query(ctx context.Context, base, q string) ([]map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct{ Result []map[string]any }
		Error  string
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	return body.Data.Result, nil
}

// waitFor polls q until it returns n series or the deadline passes.
func waitFor(t *testing.T, s *Server, q string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := query(ctx, s.URL(), q)
		cancel()
		if err == nil && len(res) == n {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q: want %d series within 20s, last got %v (err %v)", q, n, res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServerScrapesTargetsWithLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	a, b := NewTarget(t), NewTarget(t)
	s := Start(t, a.As(map[string]string{"namespace": "team-a", "pod": "web-1"}))

	res := waitFor(t, s, `up{namespace="team-a",pod="web-1"} == 1`, 1)
	if got := res[0]["metric"].(map[string]any)["job"]; got != "promtest" {
		t.Errorf("job label = %v, want promtest", got)
	}

	s.SetTargets(a.As(map[string]string{"namespace": "team-a", "pod": "web-1"}),
		b.As(map[string]string{"namespace": "team-b", "pod": "api-1"}))
	waitFor(t, s, `up{pod="api-1",namespace="team-b"} == 1`, 1)

	url := s.URL()
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := query(ctx, url, "up"); err == nil {
		t.Fatal("query after Stop succeeded, want a connection error")
	}
	s.Start()
	if s.URL() != url {
		t.Fatalf("restarted on %s, want the same address %s", s.URL(), url)
	}
	// Data from before the restart is still there (same data dir) and both
	// targets are scraped again.
	waitFor(t, s, `up == 1`, 2)
}

func TestTargetLoadAndHold(t *testing.T) {
	tg := NewTarget(t)
	tg.Load(100, 5*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	tg.HoldGoroutines(50)
	resp, err := http.Get("http://" + tg.Address() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mfs, err := tg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	// 100 rps for 0.5s: about 50, allowing for scheduling under -race.
	if n := got["http_requests_total"]; n < 30 || n > 60 {
		t.Errorf("http_requests_total = %v after 0.5s at 100 rps, want 30..60", n)
	}
	if got["http_request_duration_seconds"] != got["http_requests_total"] {
		t.Errorf("histogram count %v != counter %v", got["http_request_duration_seconds"], got["http_requests_total"])
	}
	if g := got["go_goroutines"]; g < 50 {
		t.Errorf("go_goroutines = %v with 50 held, want >= 50", g)
	}
	tg.Close()
	tg.Load(100, 0) // after Close: no-op, no panic
	tg.HoldGoroutines(10)
}

// TestRemoteWrite writes a counter and a gauge whose samples reach into
// the future, so the counter's rate and the gauge's value are exact at any
// time of a test run.
func TestRemoteWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	s := StartWith(t, promserver.Options{RemoteWrite: true})
	now := time.Now()
	from, to := now.Add(-10*time.Minute), now.Add(30*time.Minute)
	err := RemoteWrite(context.Background(), s.URL(), []Series{
		{Labels: map[string]string{"__name__": "jobs_total", "namespace": "shop", "pod": "web-1"}, Samples: Linear(from, to, 15*time.Second, 2.5)},
		{Labels: map[string]string{"__name__": "queue_depth", "namespace": "shop"}, Samples: Constant(from, to, 15*time.Second, 42)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]float64{
		`rate(jobs_total{namespace="shop"}[2m])`: 2.5,
		`queue_depth`:                            42,
	} {
		res := waitFor(t, s, q, 1)
		got, err := strconv.ParseFloat(res[0]["value"].([]any)[1].(string), 64)
		if err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v (%v), want %v", q, got, err, want)
		}
	}
}
