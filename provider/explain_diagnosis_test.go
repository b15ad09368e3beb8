package provider

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// recordingInspector records the questions a diagnosis asks and answers
// every one with no series.
type recordingInspector struct{ asked []string }

func (r *recordingInspector) QueryAll(_ context.Context, q string) ([]prometheus.Sample, error) {
	r.asked = append(r.asked, q)
	return nil, nil
}

func (r *recordingInspector) RecentLabelNames(_ context.Context, selectors []string, _ time.Duration) ([]string, error) {
	r.asked = append(r.asked, "labels "+strings.Join(selectors, " "))
	return []string{"__name__", "namespace", "pod", "kubernetes_namespace", "app.kubernetes.io/name"}, nil
}

func teamADiagnosis(in PrometheusInspector) *diagnosis {
	sq := &SourceQuery{
		PromQL:      `sum by (pod) (go_goroutines{namespace="team-a",job="app"})`,
		Scope:       prometheus.Scope{Labels: config.PrometheusLabels{Namespace: "namespace", Pod: "pod"}, Namespaces: []string{"team-a"}},
		ObjectLabel: "pod",
	}
	return newDiagnosis(&Provider{}, in, sq)
}

// Every question a diagnosis sends carries the request's namespace: the
// scope's matcher, or an equality on another label whose value is the
// namespace. Anything else is refused before it reaches Prometheus.
func TestDiagnosisStaysInScope(t *testing.T) {
	d := teamADiagnosis(&recordingInspector{})
	if d.name != "go_goroutines" || len(d.userMatchers) != 1 || d.userMatchers[0].Name != "job" {
		t.Fatalf("parsed name %q, user matchers %v", d.name, d.userMatchers)
	}
	for _, c := range []struct {
		query string
		ok    bool
	}{
		{`count({__name__="go_goroutines",namespace="team-a"})`, true},
		{`count({__name__="go_goroutines",kubernetes_namespace="team-a",pod=~"web-1|web-2"})`, true},
		{`count({__name__="go_goroutines"})`, false},
		{`count({__name__="go_goroutines",namespace="team-b"})`, false},
		{`count({__name__="go_goroutines",namespace=~"team-a|team-b"})`, false},
		{`count({__name__="go_goroutines",namespace!="team-a"})`, false},
		{`count by (l) (label_replace({__name__="go_goroutines",job="team-a"}, "l", "job", "", "") or {__name__="go_goroutines",job="x"})`, false},
	} {
		err := d.checkAnchored(c.query)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want allowed %v", c.query, err, c.ok)
		}
	}
}

func TestDiagnosisQuestions(t *testing.T) {
	in := &recordingInspector{}
	d := teamADiagnosis(in)
	f := d.missingObjects(context.Background(), []string{"web-1", "web-2"}, "pods")
	if !strings.Contains(f.summary, `Prometheus has no series of go_goroutines for namespace "team-a", under any label`) {
		t.Errorf("finding %+v", f)
	}
	for _, q := range in.asked {
		if strings.HasPrefix(q, "labels ") {
			continue
		}
		if err := d.checkAnchored(q); err != nil {
			t.Errorf("asked %s: %v", q, err)
		}
	}
	// The namespace search asks about every label the metric has, in one
	// query, and skips names PromQL cannot write.
	want := `count by (hpa_signals_label) (label_replace({__name__="go_goroutines",namespace="team-a"}, "hpa_signals_label", "namespace", "", "") or ` +
		`label_replace({__name__="go_goroutines",pod="team-a"}, "hpa_signals_label", "pod", "", "") or ` +
		`label_replace({__name__="go_goroutines",kubernetes_namespace="team-a"}, "hpa_signals_label", "kubernetes_namespace", "", ""))`
	if !slices.Contains(in.asked, want) {
		t.Errorf("questions %q\nlack %s", in.asked, want)
	}
	if len(in.asked) > maxDiagnosticQueries {
		t.Errorf("%d questions, more than %d", len(in.asked), maxDiagnosticQueries)
	}
}

func TestDiagnosisBudget(t *testing.T) {
	d := teamADiagnosis(&recordingInspector{})
	d.asked = maxDiagnosticQueries
	if _, err := d.count(context.Background(), `{__name__="go_goroutines",namespace="team-a"}`); !errors.Is(err, errBudget) {
		t.Errorf("err = %v, want the budget error", err)
	}
}

func TestNearestName(t *testing.T) {
	cat := config.Default()
	for _, c := range []struct {
		api        config.API
		name, want string
	}{
		{config.APIPods, "http_request_per_second", "http_requests_per_second"},
		{config.APIPods, "go_goroutine", "go_goroutines"},
		{config.APIExternal, "kafka_consumer_lags", "kafka_consumer_lag"},
		{config.APIPods, "kafka_consumer_lags", ""}, // not served on pods
		{config.APIPods, "cpu", ""},
	} {
		if got := nearestName(cat, "team-a", c.api, c.name); got != c.want {
			t.Errorf("nearestName(%s, %q) = %q, want %q", c.api, c.name, got, c.want)
		}
	}
}
