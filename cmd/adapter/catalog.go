package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// printCatalog writes each entry with the PromQL it produces for each API it
// is served on, with NAMESPACE standing for the request's namespace.
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
		for _, s := range shapes(cat, m) {
			q, err := prometheus.BuildQuery(m, s.scope, labels.Everything())
			if err != nil {
				return fmt.Errorf("metric %q: render the %s query: %w", m.Name, s.name, err)
			}
			fmt.Fprintf(w, "  %-28s %s\n", s.name+":", q)
		}
	}
	return nil
}

type shape struct {
	name  string
	scope prometheus.Scope
}

// shapes lists the queries an entry runs: one per API and object resource.
// A namespaced: false entry reads no namespace, so its scope names none.
func shapes(cat *config.Catalog, m *config.Metric) []shape {
	l, maxRange := cat.Prometheus.Labels, cat.Prometheus.MaxRange.Duration
	ns := []string{"NAMESPACE"}
	if !m.IsNamespaced() {
		ns = nil
	}
	scope := func(groupBy ...string) prometheus.Scope {
		return prometheus.Scope{Labels: l, Namespaces: ns, GroupBy: groupBy, MaxRange: maxRange}
	}
	var out []shape
	for _, api := range m.APIs {
		switch api {
		case config.APIPods:
			out = append(out, shape{"pods", scope(l.Pod)})
		case config.APIObject:
			out = append(out, shape{"object namespaces", scope(l.Namespace)})
			resources := make([]string, 0, len(m.Resources))
			for r := range m.Resources {
				resources = append(resources, r)
			}
			sort.Strings(resources)
			for _, r := range resources {
				out = append(out, shape{"object " + r, scope(m.Resources[r])})
			}
		case config.APIExternal:
			out = append(out, shape{"external", scope()})
		}
	}
	return out
}
