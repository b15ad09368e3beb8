package provider

import (
	"slices"
	"strings"
	"sync"

	"k8s.io/metrics/pkg/apis/custom_metrics"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// maxMemoEntries bounds each map of a memo; a full map is emptied, so a
// memo never holds more than this many queries and answers, and a catalog
// with more live combinations only costs the rebuilding it saves.
const maxMemoEntries = 4096

// memo keeps what the warm read path would otherwise rebuild on every
// request: the PromQL of an entry for a target, namespaces and selector
// (BuildQuery renders the template and parses the result for its scope
// check), and the Pods answer built from a cached value for a set of pods.
// It is emptied when the catalog changes. A nil *memo keeps nothing. It is
// safe for concurrent use.
type memo struct {
	mu      sync.Mutex
	catalog *config.Catalog // the catalog the queries were built from
	queries map[queryKey]builtQuery
	answers map[answerKey]*podAnswer
}

type queryKey struct {
	metric     string
	target     Target
	namespaces string // joined with "\x00"
	selector   string // canonical form
}

type builtQuery struct {
	promql string
	err    error
}

// answerKey names a Pods answer; the request's namespace is the pods'.
type answerKey struct {
	metric, namespace, pods, selector string
}

// podAnswer is the list built from samples for pods (sorted). Its items
// are shared by every request that gets them and must not be changed.
type podAnswer struct {
	samples *prometheus.Sample // first sample of the cached value it was built from
	n       int
	pods    []string
	list    *custom_metrics.MetricValueList
}

func newMemo() *memo {
	return &memo{queries: map[queryKey]builtQuery{}, answers: map[answerKey]*podAnswer{}}
}

// query returns the PromQL of entry m of cat for target t over namespaces
// and sel (its canonical form), building it with build once per catalog.
func (c *memo) query(cat *config.Catalog, m *config.Metric, t Target, namespaces []string, sel string, build func() (string, error)) (string, error) {
	if c == nil {
		return build()
	}
	k := queryKey{metric: m.Name, target: t, namespaces: strings.Join(namespaces, "\x00"), selector: sel}
	c.mu.Lock()
	c.resetIfLocked(cat)
	q, ok := c.queries[k]
	c.mu.Unlock()
	if ok {
		return q.promql, q.err
	}
	promql, err := build()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.catalog == cat {
		if len(c.queries) >= maxMemoEntries {
			clear(c.queries)
		}
		c.queries[k] = builtQuery{promql, err}
	}
	return promql, err
}

// resetIfLocked empties the memo if it was filled from another catalog.
func (c *memo) resetIfLocked(cat *config.Catalog) {
	if c.catalog != cat {
		c.catalog = cat
		clear(c.queries)
		clear(c.answers)
	}
}

// answer returns the Pods answer kept under k if it was built from the
// same cached samples for the same pods. The list is the caller's; its
// Items are shared and must not be changed. (The API server's encoder sets
// the list's kind while it encodes, so each request needs a list of its
// own; the items it only reads.)
func (c *memo) answer(k answerKey, samples []prometheus.Sample, pods []string) *custom_metrics.MetricValueList {
	if c == nil || len(samples) == 0 {
		return nil
	}
	c.mu.Lock()
	a := c.answers[k]
	c.mu.Unlock()
	if a == nil || a.samples != &samples[0] || a.n != len(samples) || !slices.Equal(a.pods, pods) {
		return nil
	}
	list := *a.list
	return &list
}

// keepAnswer keeps list as the Pods answer under k built from samples for
// pods. The caller must not change list's items afterwards.
func (c *memo) keepAnswer(cat *config.Catalog, k answerKey, samples []prometheus.Sample, pods []string, list *custom_metrics.MetricValueList) {
	if c == nil || len(samples) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.catalog != cat {
		return
	}
	if len(c.answers) >= maxMemoEntries {
		clear(c.answers)
	}
	kept := *list
	c.answers[k] = &podAnswer{samples: &samples[0], n: len(samples), pods: pods, list: &kept}
}
