package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Load reads and parses the catalog file at path; see Parse.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(data)
}

// Parse decodes a catalog file strictly, applies defaults, validates it and
// merges it with the presets: file entries replace presets of the same name
// and are appended otherwise, unless the file sets presets: false. Empty
// data yields the presets alone, like Default.
//
// The error lists every problem, one *FieldError per line (errors.Join):
// first the problems with the file's shape (YAML syntax, unknown or
// duplicate keys, wrong value kinds), or, when the shape is right, every
// validation problem.
func Parse(data []byte) (*Catalog, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, &FieldError{Err: fmt.Errorf("%w; fix the YAML syntax", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &FieldError{Line: extra.Line, Err: errors.New("more than one YAML document; a catalog is one document, remove the --- separator")}
	}
	var c Catalog
	d := newDecoder()
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		d.decode(root.Content[0], reflect.ValueOf(&c).Elem(), "")
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	c.setDefaults()
	if errs := c.validate(d.line); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.Presets == nil || *c.Presets {
		c.Metrics = merge(compiledPresets(), c.Metrics)
	}
	c.index()
	return &c, nil
}

// Default returns the catalog used without a file: the presets with all
// defaults applied.
func Default() *Catalog {
	c, err := Parse(nil)
	if err != nil {
		panic(fmt.Sprintf("the built-in presets are invalid: %v", err)) // a bug, caught by the tests
	}
	return c
}

// compiledPresets returns the presets with their templates parsed.
func compiledPresets() []Metric {
	ps := presets()
	for i := range ps {
		if errs := ps[i].compile(); len(errs) > 0 {
			panic(fmt.Sprintf("preset %s does not compile: %v", ps[i].Name, errors.Join(errs...)))
		}
		ps[i].preset = true
	}
	return ps
}

// With returns a new catalog with c's entries and extra, for entries that
// are not written in the file, such as those a prometheus-adapter rule
// yields for the series Prometheus holds. Each extra entry is validated
// like an entry of the file, with c's prometheus settings. An entry named
// like a preset replaces it; one named like an entry of the file, or like
// an earlier extra entry, is left out, since the file decides. The error
// lists every entry left out and why (errors.Join of *FieldError, whose
// Path is the entry's name). c is not changed.
func (c *Catalog) With(extra []Metric) (*Catalog, error) {
	out := *c
	out.Metrics = slices.Clone(c.Metrics)
	out.index()
	var errs []error
	for _, m := range extra {
		m.preset = false
		mp := &problems{}
		m.validate(mp, c.Prometheus, true)
		if len(mp.errs) > 0 {
			for _, e := range mp.errs {
				errs = append(errs, &FieldError{Path: m.Name + "." + e.Path, Err: e.Err})
			}
			continue
		}
		i, taken := out.byName[m.Name]
		switch {
		case !taken:
			out.byName[m.Name] = len(out.Metrics)
			out.Metrics = append(out.Metrics, m)
		case out.Metrics[i].preset:
			out.Metrics[i] = m
		default:
			errs = append(errs, &FieldError{Path: m.Name, Err: errors.New("the catalog already has an entry of this name, which is served instead; rename one of them")})
		}
	}
	return &out, errors.Join(errs...)
}

// merge returns base with each entry of over replacing the base entry of
// the same name in place, and the other entries of over appended in order.
func merge(base, over []Metric) []Metric {
	out := base
	for _, m := range over {
		replaced := false
		for i := range out {
			if out[i].Name == m.Name {
				out[i], replaced = m, true
				break
			}
		}
		if !replaced {
			out = append(out, m)
		}
	}
	return out
}

func (c *Catalog) index() {
	c.byName = make(map[string]int, len(c.Metrics))
	for i, m := range c.Metrics {
		c.byName[m.Name] = i
	}
}

// Lookup returns the entry called name, or nil if there is none. The entry
// belongs to the Catalog and must not be modified.
func (c *Catalog) Lookup(name string) *Metric {
	if c.byName == nil {
		for i := range c.Metrics {
			if c.Metrics[i].Name == name {
				return &c.Metrics[i]
			}
		}
		return nil
	}
	if i, ok := c.byName[name]; ok {
		return &c.Metrics[i]
	}
	return nil
}
