package provider

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/hpa-signals/hpa-signals/config/promadapter"
)

// rediscoverAfter is how long a cluster mapper keeps its view of the API
// resources before a name it does not know makes it read them again, so a
// CRD installed later is found without a request storm.
const rediscoverAfter = time.Minute

// ClusterMapper returns a promadapter.Mapper that finds resources in the
// cluster's API discovery, CRDs included, as prometheus-adapter's
// RESTMapper does.
func ClusterMapper(cfg *rest.Config) (promadapter.Mapper, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create discovery client: %w", err)
	}
	m := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	var mu sync.Mutex
	var last time.Time
	return func(gr schema.GroupResource) (schema.GroupResource, error) {
		gvr, err := m.ResourceFor(gr.WithVersion(""))
		if meta.IsNoMatchError(err) {
			mu.Lock()
			stale := time.Since(last) > rediscoverAfter
			if stale {
				last = time.Now()
				m.Reset()
			}
			mu.Unlock()
			if stale {
				gvr, err = m.ResourceFor(gr.WithVersion(""))
			}
		}
		if err != nil {
			return schema.GroupResource{}, err
		}
		return gvr.GroupResource(), nil
	}, nil
}

// BuiltinMapper returns a promadapter.Mapper that knows the resources
// built into Kubernetes (client-go's scheme), for use without a cluster.
// A resource served by several groups (events) is ambiguous there unless
// its group is given.
func BuiltinMapper() promadapter.Mapper {
	// One version per group, the preferred one, as a cluster serves them;
	// extensions holds only old copies of apps and networking resources.
	preferred := map[string]string{}
	for _, gv := range scheme.Scheme.PrioritizedVersionsAllGroups() {
		if _, ok := preferred[gv.Group]; !ok {
			preferred[gv.Group] = gv.Version
		}
	}
	m := meta.NewDefaultRESTMapper(nil)
	for gvk := range scheme.Scheme.AllKnownTypes() {
		if preferred[gvk.Group] != gvk.Version || gvk.Group == "extensions" || strings.HasSuffix(gvk.Kind, "List") || strings.HasSuffix(gvk.Kind, "Options") {
			continue
		}
		m.Add(gvk, meta.RESTScopeNamespace)
	}
	return func(gr schema.GroupResource) (schema.GroupResource, error) {
		gvr, err := m.ResourceFor(gr.WithVersion(""))
		if err != nil {
			return schema.GroupResource{}, err
		}
		return gvr.GroupResource(), nil
	}
}
