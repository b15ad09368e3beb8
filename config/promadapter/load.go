package promadapter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hpa-signals/hpa-signals/config"
)

// Config is a prometheus-adapter configuration file after decoding and
// validation: its rules, ready for discovery, and the notes about what
// hpa-signals reads differently. A Config is immutable.
type Config struct {
	// Rules are the rules (custom metrics) followed by the external rules,
	// in file order.
	Rules []*Rule
	// Notes are what the file holds that hpa-signals ignores or reads
	// otherwise than prometheus-adapter: resourceRules, the metricQuery
	// spelling, a Helm chart's default rules.
	Notes []Note
}

// Note is a remark about one place of the file; unlike a *config.FieldError
// it does not stop the file from loading.
type Note struct {
	// Line is the 1-based line the note is about; 0 for the whole file.
	Line int
	// Path names the field, e.g. "rules[2].metricQuery".
	Path string
	// Text says what hpa-signals does there and what to do about it.
	Text string
}

func (n Note) String() string {
	var b strings.Builder
	if n.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", n.Line)
	}
	if n.Path != "" {
		b.WriteString(n.Path + ": ")
	}
	b.WriteString(n.Text)
	return b.String()
}

// configMapKey is the key of the ConfigMap that prometheus-adapter's
// manifests and Helm chart mount as its --config file.
const configMapKey = "config.yaml"

// Load reads and parses the prometheus-adapter configuration at path; see
// Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read prometheus-adapter config: %w", err)
	}
	return Parse(data)
}

// Parse decodes a prometheus-adapter configuration strictly and validates
// its rules. It takes any of the shapes such a file comes in:
//
//   - the configuration itself (rules, externalRules, resourceRules), as
//     passed to prometheus-adapter's --config;
//   - a ConfigMap manifest holding it under data."config.yaml" (e.g. its
//     deploy/manifests/config-map.yaml), with line numbers of the manifest;
//   - a values file of the prometheus-adapter Helm chart, whose rules block
//     holds custom, external, default, existing and resource; the chart's
//     other values are not read.
//
// The error lists every problem, one *config.FieldError per line
// (errors.Join), each naming the rule, the field and the fix.
func Parse(data []byte) (*Config, error) {
	root, err := document(data, 0)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &config.FieldError{Err: errors.New("the file is empty; write the prometheus-adapter configuration (rules:, externalRules:)")}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &config.FieldError{Line: root.Line, Err: errors.New("expected a mapping of key: value lines, such as rules and externalRules")}
	}
	if kind := value(root, "kind"); kind != nil && kind.Value == "ConfigMap" {
		return parseConfigMap(root)
	}
	if rules := value(root, "rules"); rules != nil && rules.Kind == yaml.MappingNode {
		return parseHelmValues(rules)
	}
	return parseConfig(root, 0)
}

// document decodes the single YAML document in data; nil if it is empty.
// offset is added to line numbers.
func document(data []byte, offset int) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, &config.FieldError{Err: fmt.Errorf("%w; fix the YAML syntax", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &config.FieldError{Line: extra.Line + offset, Err: errors.New("more than one YAML document; give one configuration, without --- separators")}
	}
	if len(doc.Content) != 1 {
		return nil, nil
	}
	n := doc.Content[0]
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	return n, nil
}

// value returns the value of key in the mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			for v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

// without returns a copy of the mapping m without key, and the line of the
// key if it was there.
func without(m *yaml.Node, key string) (*yaml.Node, int) {
	out := *m
	out.Content = nil
	line := 0
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			line = m.Content[i].Line
			continue
		}
		out.Content = append(out.Content, m.Content[i], m.Content[i+1])
	}
	return &out, line
}

// resourceRulesNote says why resourceRules are not read.
func resourceRulesNote(line int, path string) Note {
	return Note{Line: line, Path: path, Text: "not read: resource rules serve metrics.k8s.io (kubectl top, HPAs on cpu and memory), which hpa-signals does not serve; " +
		"keep metrics-server (or prometheus-adapter for that API alone) serving it, and move only custom.metrics.k8s.io and external.metrics.k8s.io to hpa-signals"}
}

// parseConfig reads prometheus-adapter's own configuration format.
func parseConfig(root *yaml.Node, offset int) (*Config, error) {
	root, rrLine := without(root, "resourceRules")
	var spec fileSpec
	line, errs := config.DecodeNode(root, &spec, "", offset)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c := &Config{}
	if rrLine > 0 {
		c.Notes = append(c.Notes, resourceRulesNote(rrLine+offset, "resourceRules"))
	}
	if err := c.addRules(spec.Rules, spec.ExternalRules, "rules", "externalRules", line); err != nil {
		return nil, err
	}
	if len(c.Rules) == 0 {
		return nil, &config.FieldError{Err: fmt.Errorf("no rules or externalRules, so there is nothing to serve%s; add rules, or leave prometheus-adapter's configuration out", onlyResourceRules(rrLine))}
	}
	return c, nil
}

func onlyResourceRules(line int) string {
	if line == 0 {
		return ""
	}
	return " (resourceRules serve metrics.k8s.io, which hpa-signals does not: keep metrics-server for it)"
}

// parseConfigMap reads the configuration held by a ConfigMap manifest.
func parseConfigMap(root *yaml.Node) (*Config, error) {
	data := value(root, "data")
	if data == nil || data.Kind != yaml.MappingNode {
		return nil, &config.FieldError{Line: root.Line, Path: "data", Err: fmt.Errorf("missing; a prometheus-adapter ConfigMap holds its configuration under data.%q", configMapKey)}
	}
	v := value(data, configMapKey)
	if v == nil || v.Kind != yaml.ScalarNode {
		var keys []string
		for i := 0; i < len(data.Content); i += 2 {
			keys = append(keys, data.Content[i].Value)
		}
		return nil, &config.FieldError{Line: data.Line, Path: "data", Err: fmt.Errorf(
			"has no key %q (keys: %s); prometheus-adapter reads its configuration from the key %q of its ConfigMap", configMapKey, strings.Join(keys, ", "), configMapKey)}
	}
	// A block scalar's content starts on the line after its indicator.
	inner, err := document([]byte(v.Value), v.Line)
	if err != nil {
		return nil, err
	}
	if inner == nil || inner.Kind != yaml.MappingNode {
		return nil, &config.FieldError{Line: v.Line, Path: fmt.Sprintf("data[%q]", configMapKey), Err: errors.New("holds no configuration; write rules: and externalRules: there")}
	}
	return parseConfig(inner, v.Line)
}

// parseHelmValues reads the rules block of a Helm values file.
func parseHelmValues(rules *yaml.Node) (*Config, error) {
	rules, resLine := without(rules, "resource")
	var spec helmRules
	line, errs := config.DecodeNode(rules, &spec, "rules", 0)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if spec.Existing != "" {
		return nil, &config.FieldError{Line: line("rules.existing"), Path: "rules.existing", Err: fmt.Errorf(
			"the rules are in the ConfigMap %q, not in this file; import that ConfigMap (kubectl get configmap %s -o yaml > rules.yaml)", spec.Existing, spec.Existing)}
	}
	c := &Config{}
	if spec.Default == nil || *spec.Default {
		c.Notes = append(c.Notes, Note{Line: line("rules.default"), Path: "rules.default", Text: "the chart adds its default rules, which are not in this file and are not read; " +
			"if HPAs use them, import the ConfigMap the chart renders (kubectl get configmap prometheus-adapter -o yaml) instead of the values file"})
	}
	if resLine > 0 {
		c.Notes = append(c.Notes, resourceRulesNote(resLine, "rules.resource"))
	}
	if err := c.addRules(spec.Custom, spec.External, "rules.custom", "rules.external", line); err != nil {
		return nil, err
	}
	if len(c.Rules) == 0 {
		return nil, &config.FieldError{Line: line("rules"), Path: "rules", Err: fmt.Errorf("no custom or external rules, so there is nothing to serve%s; add rules.custom or rules.external", onlyResourceRules(resLine))}
	}
	return c, nil
}

// addRules compiles the custom and external rules, whose paths are
// customPath[i] and externalPath[i]; line locates a path in the file.
func (c *Config) addRules(custom, external []ruleSpec, customPath, externalPath string, line func(string) int) error {
	var errs []*config.FieldError
	for _, set := range []struct {
		specs    []ruleSpec
		path     string
		external bool
	}{{custom, customPath, false}, {external, externalPath, true}} {
		for i, spec := range set.specs {
			path := fmt.Sprintf("%s[%d]", set.path, i)
			r, problems, notes := compile(spec, path, set.external)
			for _, p := range problems {
				p.Line = line(p.Path)
				errs = append(errs, p)
			}
			for _, n := range notes {
				n.Line = line(n.Path)
				c.Notes = append(c.Notes, n)
			}
			if r != nil {
				r.Line = line(path)
				c.Rules = append(c.Rules, r)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *config.FieldError) int { return a.Line - b.Line })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}
