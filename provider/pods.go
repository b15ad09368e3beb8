package provider

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// podsGVR is what the pod watch cache lists and watches.
var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// InformerPods resolves pod selectors from a metadata-only watch cache of
// all pods: names and labels, no specs, no LIST per request.
type InformerPods struct {
	factory  metadatainformer.SharedInformerFactory
	informer cache.SharedIndexInformer
	lister   cache.GenericLister
}

var _ PodLister = (*InformerPods)(nil)

// NewInformerPods returns a pod lister backed by a metadata informer on
// client. Start must be called before it answers.
func NewInformerPods(client metadata.Interface) *InformerPods {
	factory := metadatainformer.NewSharedInformerFactory(client, 0)
	gi := factory.ForResource(podsGVR)
	return &InformerPods{factory: factory, informer: gi.Informer(), lister: gi.Lister()}
}

// Start starts the watch; it stops when stop is closed.
func (p *InformerPods) Start(stop <-chan struct{}) { p.factory.Start(stop) }

// HasSynced reports whether the initial list has been loaded.
func (p *InformerPods) HasSynced() bool { return p.informer.HasSynced() }

// PodNames implements PodLister.
func (p *InformerPods) PodNames(namespace string, selector labels.Selector) ([]string, error) {
	if !p.informer.HasSynced() {
		return nil, fmt.Errorf("the pod watch cache has not synced yet")
	}
	objs, err := p.lister.ByNamespace(namespace).List(selector)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		if a, ok := o.(interface{ GetName() string }); ok {
			names = append(names, a.GetName())
		}
	}
	return names, nil
}
