package provider_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func (f *fixture) queryCount() int {
	f.prom.mu.Lock()
	defer f.prom.mu.Unlock()
	return len(f.prom.queries)
}

// TestServingUnparsableSelectorsAre400 sends selectors that do not parse
// as label selectors through the real handlers: each is a 400 that names
// the parameter and says what a selector is, and no source is asked.
func TestServingUnparsableSelectorsAre400(t *testing.T) {
	f := newFixture(t)
	selectors := []string{`handler=.*`, `handler in (a|b)`, `handler=a"}or{x="`}
	paths := []struct{ path, param string }{
		{"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?metricLabelSelector=", "metricLabelSelector"},
		{"/apis/custom.metrics.k8s.io/v1beta1/namespaces/team-a/pods/*/http_requests_per_second?metricLabelSelector=", "metricLabelSelector"},
		{"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/services/frontend/http_request_duration_seconds_p99?metricLabelSelector=", "metricLabelSelector"},
		{"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?labelSelector=", "labelSelector"},
		{"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=", "labelSelector"},
	}
	for _, sel := range selectors {
		for _, p := range paths {
			t.Run(p.path+sel, func(t *testing.T) {
				before := f.queryCount()
				code, body := get(t, f.srv, p.path+url.QueryEscape(sel))
				if code != http.StatusBadRequest {
					t.Fatalf("GET %s%s = %d, want 400: %s", p.path, sel, code, body)
				}
				for _, w := range []string{`"reason":"BadRequest"`, p.param + ` \"`, "is not a valid label selector", "not regular expressions or PromQL"} {
					if !strings.Contains(body, w) {
						t.Errorf("body lacks %q: %s", w, body)
					}
				}
				if n := f.queryCount() - before; n != 0 {
					t.Errorf("%d Prometheus queries for a selector that does not parse", n)
				}
			})
		}
	}
}
