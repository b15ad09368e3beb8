package provider_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	promclient "github.com/prometheus/client_golang/prometheus"

	"github.com/hpa-signals/hpa-signals/provider"
)

// recorder is a Registerer that keeps what is registered.
type recorder struct{ collectors []promclient.Collector }

func (r *recorder) Register(c promclient.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...promclient.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recorder) Unregister(promclient.Collector) bool { return false }

// TestReadmeListsEveryMetric checks that "Observing the adapter" names
// every metric the provider registers, with its labels.
func TestReadmeListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Observing the adapter\n")
	section, _, _ = strings.Cut(section, "\n## ")

	var r recorder
	provider.NewMetrics(&r)
	desc := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	ch := make(chan *promclient.Desc, 100)
	for _, c := range r.collectors {
		c.Describe(ch)
	}
	close(ch)
	n := 0
	for d := range ch {
		m := desc.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read %s", d)
		}
		n++
		name := "`" + m[1] + "`"
		if m[2] != "" {
			name = "`" + m[1] + "{" + m[2] + "}`"
		}
		if !strings.Contains(section, name) {
			t.Errorf("README's Observing the adapter lacks %s", name)
		}
	}
	if n < 12 {
		t.Fatalf("read %d metrics from NewMetrics, want all of them", n)
	}
}
