package config

import "slices"

// AllNamespaces in CallerNamespaces lets every namespace read a
// namespaced: false entry.
const AllNamespaces = "*"

// IsNamespaced reports whether m's data belongs to namespaces, so that a
// request reads only its own namespace's share (see Metric.Namespaced).
func (m *Metric) IsNamespaced() bool { return m.Namespaced == nil || *m.Namespaced }

// AllowsCaller reports whether a request made in namespace may read m at
// all: always for a namespaced entry, and for a namespaced: false entry only
// when CallerNamespaces lists namespace or "*".
func (m *Metric) AllowsCaller(namespace string) bool {
	if m.IsNamespaced() {
		return true
	}
	return slices.Contains(m.CallerNamespaces, AllNamespaces) || slices.Contains(m.CallerNamespaces, namespace)
}
