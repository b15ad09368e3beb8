package main

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
)

// printCatalog writes each entry with the PromQL it produces for each API
// and object resource it is served on, with NAMESPACE standing for the
// request's namespace. The queries come from provider.PrometheusQuery, which
// builds every query a request runs, with an empty metric selector.
func printCatalog(w io.Writer, cat *config.Catalog) error {
	l := cat.Prometheus.Labels
	fmt.Fprintf(w, "Prometheus labels: namespace=%q pod=%q\n", l.Namespace, l.Pod)
	for _, c := range cat.Kafka.Clusters {
		fmt.Fprintf(w, "Kafka cluster %q: brokers %s\n", c.Name, strings.Join(c.Brokers, ","))
	}
	for i := range cat.Metrics {
		m := &cat.Metrics[i]
		fmt.Fprintf(w, "\n%s (source %s, apis %v)\n", m.Name, m.Source, m.APIs)
		if m.Description != "" {
			fmt.Fprintf(w, "  %s\n", m.Description)
		}
		if m.Source == config.SourceKafka {
			k := m.Kafka
			fmt.Fprintf(w, "  signal %s, offsetReset %s, groupPattern %q, stallWindow %s\n", k.Signal, k.OffsetReset, k.GroupPattern, k.StallWindow.Duration)
			if len(k.AllowedTopics) > 0 {
				fmt.Fprintf(w, "  allowedTopics %q\n", k.AllowedTopics)
			}
			fmt.Fprintf(w, "  selector keys: group (required), topic, cluster\n")
			continue
		}
		var keys []string
		for _, p := range m.Parameters {
			keys = append(keys, fmt.Sprintf("%s (default %q, pattern %q)", p.Name, p.Default, p.Pattern))
		}
		keys = append(keys, m.SelectorLabels...)
		if len(keys) > 0 {
			fmt.Fprintf(w, "  selector keys: %s\n", strings.Join(keys, ", "))
		}
		if !m.IsNamespaced() {
			fmt.Fprintf(w, "  not namespaced; callers: %s\n", strings.Join(m.CallerNamespaces, ", "))
		}
		if m.Labels != nil {
			l := cat.LabelsFor(m)
			fmt.Fprintf(w, "  labels: namespace=%q pod=%q\n", l.Namespace, l.Pod)
		}
		for _, t := range provider.Targets(m) {
			q, err := provider.PrometheusQuery(cat, m, t, []string{"NAMESPACE"}, labels.Everything())
			if err != nil {
				return fmt.Errorf("metric %q: render the %s query: %w", m.Name, t, err)
			}
			fmt.Fprintf(w, "  %-28s %s\n", t.String()+":", q)
		}
	}
	return nil
}
