package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/config/promadapter"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

const importUsage = `usage: adapter import-prometheus-adapter [flags] FILE

Prints an hpa-signals catalog with one entry per metric the rules of
prometheus-adapter's configuration FILE (its --config file, its ConfigMap or
Helm values) yield for the series Prometheus holds now, each with a comment
saying where it came from and what differs. It discovers them as
--prometheus-adapter-config does, so the catalog serves what that flag
serves today.

`

// importPrometheusAdapter runs the import-prometheus-adapter command.
func importPrometheusAdapter(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("import-prometheus-adapter", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage); fs.PrintDefaults() }
	prom := prometheus.NewOptions()
	prom.AddFlags(fs)
	kubeconfig := fs.String("kubeconfig", "", "Kubeconfig of the cluster whose API resources (CRDs included) the rules' resources are looked up in. Empty: the resources built into Kubernetes.")
	maxAge := fs.Duration("metrics-max-age", 10*time.Minute, "How recent a series' samples must be to count.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	file := fs.Arg(0)
	if prom.URL == "" {
		fmt.Fprintln(stderr, "import-prometheus-adapter needs --prometheus-url: a rule's metric names and resources come from the series Prometheus holds")
		return 2
	}
	if errs := prom.Validate(); len(errs) > 0 {
		fmt.Fprintln(stderr, errors.Join(errs...))
		return 2
	}
	rules, err := promadapter.Load(file)
	if err != nil {
		fmt.Fprintf(stderr, "%s is invalid:\n%v\n", file, err)
		return 1
	}
	client, err := prometheus.NewClient(prom)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	mapper := provider.BuiltinMapper()
	if *kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err == nil {
			mapper, err = provider.ClusterMapper(cfg)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := importRules(ctx, stdout, file, rules, client, mapper, *maxAge); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// importRules discovers the metrics of rules, as the adapter does, and
// writes them as a catalog.
func importRules(ctx context.Context, w io.Writer, file string, rules *promadapter.Config, names provider.SeriesNames, mapper promadapter.Mapper, maxAge time.Duration) error {
	base, err := config.Parse([]byte("presets: false\n"))
	if err != nil {
		return err
	}
	d := provider.NewDiscovery(provider.DiscoveryOptions{
		Rules:      func() *promadapter.Config { return rules },
		Catalog:    func() *config.Catalog { return base },
		Prometheus: names,
		Mapper:     mapper,
		MaxAge:     maxAge,
		MaxMetrics: 1 << 30,
	})
	if err := d.Refresh(ctx); err != nil {
		return fmt.Errorf("discover the rules' metrics: %w", err)
	}
	return writeCatalog(w, file, rules, base, d.Entries())
}

// commonDifferences is what every imported entry serves differently from
// prometheus-adapter; the README's list has the reasons.
var commonDifferences = []string{
	"NaN, ±Inf and empty results are 404 (no data), not 0 or an empty list; a Prometheus outage is 503, never a value",
	"pods and objects are read with one query per namespace grouped by the pod (or object) label, filtered to the objects asked for, so .LabelMatchers holds the namespace and selector matchers but not the object names",
	"selector values are escaped label values, not regular expressions; keys must be Prometheus label names; the namespace and pod labels cannot be selector keys",
	"values carry the sample's time and milli precision rounded, not truncated",
}

// writeCatalog writes the entries as a catalog file, refused ones as
// comments.
func writeCatalog(w io.Writer, file string, rules *promadapter.Config, base *config.Catalog, entries []promadapter.Entry) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# hpa-signals catalog imported from prometheus-adapter's configuration %s\n", file)
	fmt.Fprintf(&b, "# by adapter import-prometheus-adapter: one entry per metric its rules yield\n# for the series Prometheus held at import time. A series that appears later\n# needs a new entry (or run the adapter with --prometheus-adapter-config).\n#\n")
	b.WriteString("# Every entry differs from prometheus-adapter in this (see the README,\n# Coming from prometheus-adapter):\n")
	for _, d := range commonDifferences {
		b.WriteString(comment("- "+d, "#   "))
	}
	for _, n := range rules.Notes {
		b.WriteString(comment("note: "+n.String(), "# "))
	}
	b.WriteString("presets: false\n")
	var body strings.Builder
	served := 0
	taken := map[string]bool{}
	for _, e := range entries {
		m := e.Metric
		head := fmt.Sprintf("from %s (seriesQuery %s, line %d), series %s", e.Rule.Path, e.Rule.SeriesQuery, e.Rule.Line, m.Series)
		var out bytes.Buffer
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		if err := enc.Encode(entryNode(m)); err != nil {
			return err
		}
		text := strings.TrimSuffix(out.String(), "\n")
		_, refused := base.With([]config.Metric{m})
		if refused == nil && taken[m.Name] {
			refused = errors.New("another entry has this name")
		}
		body.WriteString("\n")
		body.WriteString(comment(head, "  # "))
		for _, n := range e.Notes {
			body.WriteString(comment("differs: "+n, "  # "))
		}
		if refused != nil {
			body.WriteString(comment("not imported: "+refused.Error(), "  # "))
			body.WriteString(comment(indentList(text), "  # "))
			continue
		}
		taken[m.Name] = true
		served++
		body.WriteString(indentList(text) + "\n")
	}
	if served == 0 {
		b.WriteString("metrics: []\n")
	} else {
		b.WriteString("metrics:\n")
	}
	b.WriteString(body.String())
	_, err := io.WriteString(w, b.String())
	return err
}

// indentList writes a YAML mapping as an item of the metrics list.
func indentList(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if i == 0 {
			lines[i] = "  - " + l
		} else {
			lines[i] = "    " + l
		}
	}
	return strings.Join(lines, "\n")
}

// comment writes text as comment lines with prefix, wrapping long lines.
func comment(text, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		for len(line) > 100 {
			cut := strings.LastIndex(line[:100], " ")
			if cut <= 0 {
				break
			}
			b.WriteString(prefix + line[:cut] + "\n")
			line = "  " + line[cut+1:]
		}
		b.WriteString(strings.TrimRight(prefix+line, " ") + "\n")
	}
	return b.String()
}

// entryNode is the catalog YAML of an imported entry, in the key order of
// the catalog's documentation.
func entryNode(m config.Metric) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) { n.Content = append(n.Content, scalar(key), v) }
	add("name", scalar(m.Name))
	add("description", scalar(m.Description))
	apis := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, a := range m.APIs {
		apis.Content = append(apis.Content, scalar(string(a)))
	}
	add("apis", apis)
	add("source", scalar(string(m.Source)))
	add("series", scalar(m.Series))
	add("query", scalar(m.Query))
	sel := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, l := range m.SelectorLabels {
		sel.Content = append(sel.Content, scalar(l))
	}
	add("selectorLabels", sel)
	if len(m.Resources) > 0 {
		res := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, len(m.Resources))
		for k := range m.Resources {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			res.Content = append(res.Content, scalar(k), scalar(m.Resources[k]))
		}
		add("resources", res)
	}
	if l := m.Labels; l != nil && (l.Namespace != config.DefaultNamespaceLabel || l.Pod != config.DefaultPodLabel) {
		labels := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		labels.Content = append(labels.Content, scalar("namespace"), scalar(l.Namespace), scalar("pod"), scalar(l.Pod))
		add("labels", labels)
	}
	if !m.IsNamespaced() {
		add("namespaced", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"})
		callers := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, c := range m.CallerNamespaces {
			callers.Content = append(callers.Content, scalar(c))
		}
		add("callerNamespaces", callers)
	}
	return n
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
