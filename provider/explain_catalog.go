package provider

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/explain"
)

// explainCatalog is the catalog step: the entry the metric name resolves to
// for the request's namespace and API, with what it accepts, or why there
// is none and the closest name. An entry the namespace may not read does
// not exist for it, here as on the metrics APIs.
func explainCatalog(cat *config.Catalog, ex *explained) (explain.Step, *config.Metric) {
	name, api := ex.req.Metric, ex.req.API
	step := explain.Step{Name: explain.StepCatalog, Result: explain.Failed}
	m := cat.Lookup(name)
	if m == nil || !m.AllowsCaller(ex.namespace) {
		step.Summary = fmt.Sprintf("metric %q is not in the catalog", name)
		if near := nearestName(cat, ex.namespace, api, name); near != "" {
			step.Details = []string{fmt.Sprintf("did you mean %s?", near)}
			step.Fix = fmt.Sprintf("rename the metric in the HPA to %s", near)
		} else {
			step.Details = []string{"the catalog serves on the " + string(api) + " API: " + strings.Join(servedNames(cat, ex.namespace, api), ", ")}
			step.Fix = fmt.Sprintf("use a metric of the catalog, or ask the adapter's admin to add an entry named %q (adapter check-config prints the catalog)", name)
		}
		return step, nil
	}
	if !m.Serves(api) {
		step.Summary = fmt.Sprintf("metric %q is served on the %s API, not on %s", name, joinAPIs(m.APIs), api)
		step.Fix = fmt.Sprintf("use it as %s metric in the HPA, or ask the adapter's admin to add %q to the entry's apis", metricTypeOf(m.APIs[0]), api)
		return step, nil
	}
	step.Result = explain.OK
	step.Summary = fmt.Sprintf("%s: %s entry served on the %s API", m.Name, m.Source, joinAPIs(m.APIs))
	if m.Description != "" {
		step.Details = append(step.Details, m.Description)
	}
	if m.Source == config.SourceKafka {
		k := m.Kafka
		clusters := make([]string, len(cat.Kafka.Clusters))
		for i, c := range cat.Kafka.Clusters {
			clusters[i] = fmt.Sprintf("%q", c.Name)
		}
		step.Details = append(step.Details,
			fmt.Sprintf("signal %s, offsetReset %s", k.Signal, k.OffsetReset),
			fmt.Sprintf("selector keys: group (required), topic (optional, = or in), cluster (one of %s; optional with one cluster)", strings.Join(clusters, ", ")))
		step.Details = append(step.Details, ownerRule(cat, m, ex.namespace)...)
		return step, m
	}
	for _, p := range m.Parameters {
		def := "required"
		if p.Default != "" {
			def = "default " + p.Default
		}
		step.Details = append(step.Details, fmt.Sprintf("parameter %s (%s, values matching %s)", p.Name, def, p.Pattern))
	}
	switch {
	case slices.Contains(m.SelectorLabels, "*"):
		step.Details = append(step.Details, "selector keys: any Prometheus label name")
	case len(m.SelectorLabels) > 0:
		step.Details = append(step.Details, "selector keys: "+strings.Join(m.SelectorLabels, ", "))
	case len(m.Parameters) == 0:
		step.Details = append(step.Details, "selector keys: none (the metric selector must be empty)")
	}
	if api == config.APIObject {
		objects := []string{"namespaces", "pods"}
		for _, r := range sortedKeys(m.Resources) {
			objects = append(objects, fmt.Sprintf("%s (label %s)", r, m.Resources[r]))
		}
		step.Details = append(step.Details, "objects: "+strings.Join(objects, ", "))
	}
	if !m.IsNamespaced() {
		step.Details = append(step.Details, "not namespaced: reads data no namespace owns")
	}
	return step, m
}

// ownerRule says which consumer groups namespace reads through the Kafka
// entry m: a rule decided by group names alone, so it tells nothing about
// which groups exist.
func ownerRule(cat *config.Catalog, m *config.Metric, namespace string) []string {
	out := []string{fmt.Sprintf("namespace %q reads the consumer groups %s", namespace, ownedGroups(cat, m, namespace))}
	if topics := m.Kafka.AllowedTopicsFor(namespace); len(topics) > 0 {
		out = append(out, fmt.Sprintf("a topic key may also name topics the group has no committed offsets for if they match %s (allowedTopics)", strings.Join(quoted(topics), ", ")))
	} else {
		out = append(out, "a topic key may name only topics the group has committed offsets for")
	}
	return out
}

// ownedGroups describes the groups namespace owns through m.
func ownedGroups(cat *config.Catalog, m *config.Metric, namespace string) string {
	pattern := strings.ReplaceAll(m.Kafka.GroupPattern, config.NamespacePlaceholder, namespace)
	s := fmt.Sprintf("matching %q (groupPattern %q)", pattern, m.Kafka.GroupPattern)
	if !m.IsNamespaced() {
		return s
	}
	var given []string
	for _, o := range cat.Kafka.GroupOwners {
		if o.Namespace == namespace {
			given = append(given, o.Groups...)
		}
	}
	if len(given) > 0 {
		s += " and " + strings.Join(quoted(given), ", ") + " (kafka.groupOwners)"
	}
	return s
}

// ownership says why namespace may read group (QueryFor has checked it).
func ownership(cat *config.Catalog, m *config.Metric, namespace, group string) string {
	pattern := strings.ReplaceAll(m.Kafka.GroupPattern, config.NamespacePlaceholder, namespace)
	if ok, err := path.Match(pattern, group); ok && err == nil {
		return fmt.Sprintf("namespace %q owns group %q: it matches %q (groupPattern %q)", namespace, group, pattern, m.Kafka.GroupPattern)
	}
	return fmt.Sprintf("namespace %q owns group %q: kafka.groupOwners gives it", namespace, group)
}

// nearestName returns the name of an entry served to namespace on api that
// is within a small edit distance of name, or "".
func nearestName(cat *config.Catalog, namespace string, api config.API, name string) string {
	best, bestDist := "", max(2, len(name)/6)+1
	for _, n := range servedNames(cat, namespace, api) {
		if d := editDistance(n, name); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// servedNames lists, sorted, the entries namespace may read on api.
func servedNames(cat *config.Catalog, namespace string, api config.API) []string {
	var names []string
	for i := range cat.Metrics {
		m := &cat.Metrics[i]
		if m.AllowsCaller(namespace) && m.Serves(api) {
			names = append(names, m.Name)
		}
	}
	sort.Strings(names)
	return names
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinAPIs(apis []config.API) string {
	s := make([]string, len(apis))
	for i, a := range apis {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// metricTypeOf names the HPA metric type that reads an API, with its
// article.
func metricTypeOf(api config.API) string {
	switch api {
	case config.APIPods:
		return "a Pods"
	case config.APIObject:
		return "an Object"
	default:
		return "an External"
	}
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
