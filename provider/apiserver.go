package provider

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapi "k8s.io/apiserver/pkg/endpoints"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver/installer"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
	cmregistry "sigs.k8s.io/custom-metrics-apiserver/pkg/registry/custom_metrics"
	emregistry "sigs.k8s.io/custom-metrics-apiserver/pkg/registry/external_metrics"
)

// NewAPIServer builds the metrics API server from c, serving p as both the
// custom and the external metrics API. It installs the two APIs as
// custom-metrics-apiserver's CompletedConfig.New does, with the library's
// handlers, storage and conversions, but with a serializer that writes
// lists of metric values itself (fastListNegotiator): the library takes
// its serializer from a package variable that cannot be given another
// one.
func NewAPIServer(c apiserver.CompletedConfig, name string, p *Provider) (*genericapiserver.GenericAPIServer, error) {
	s, err := c.CompletedConfig.New(name, genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	serializer := newFastListNegotiator(apiserver.Codecs)

	custom := genericapiserver.NewDefaultAPIGroupInfo(custom_metrics.GroupName, apiserver.Scheme, runtime.NewParameterCodec(apiserver.Scheme), apiserver.Codecs)
	for i, gv := range custom.PrioritizedVersions {
		api := &installer.MetricsAPIGroupVersion{
			DynamicStorage:  cmregistry.NewREST(p),
			APIGroupVersion: apiGroupVersion(&custom, gv, serializer),
			ResourceLister:  cmprovider.NewCustomMetricResourceLister(p),
			Handlers:        &installer.CMHandlers{},
		}
		if err := api.InstallREST(s.Handler.GoRestfulContainer); err != nil {
			return nil, err
		}
		if i == 0 {
			addGroup(s, gv)
		}
	}

	external := genericapiserver.NewDefaultAPIGroupInfo(external_metrics.GroupName, apiserver.Scheme, metav1.ParameterCodec, apiserver.Codecs)
	gv := external.PrioritizedVersions[0]
	api := &installer.MetricsAPIGroupVersion{
		DynamicStorage:  emregistry.NewREST(p),
		APIGroupVersion: apiGroupVersion(&external, gv, serializer),
		ResourceLister:  cmprovider.NewExternalMetricResourceLister(p),
		Handlers:        &installer.EMHandlers{},
	}
	if err := api.InstallREST(s.Handler.GoRestfulContainer); err != nil {
		return nil, err
	}
	addGroup(s, gv)
	return s, nil
}

func apiGroupVersion(g *genericapiserver.APIGroupInfo, gv schema.GroupVersion, serializer runtime.NegotiatedSerializer) *genericapi.APIGroupVersion {
	return &genericapi.APIGroupVersion{
		Root:             genericapiserver.APIGroupPrefix,
		GroupVersion:     gv,
		MetaGroupVersion: g.MetaGroupVersion,
		ParameterCodec:   g.ParameterCodec,
		Serializer:       serializer,
		Creater:          g.Scheme, //nolint:misspell // the field's name
		Convertor:        g.Scheme,
		UnsafeConvertor:  runtime.UnsafeObjectConvertor(g.Scheme),
		Typer:            g.Scheme,
		Namer:            runtime.Namer(meta.NewAccessor()),
	}
}

// addGroup lists the group of gv, at that version, in /apis and serves its
// group document.
func addGroup(s *genericapiserver.GenericAPIServer, gv schema.GroupVersion) {
	v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	group := metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}
	s.DiscoveryGroupManager.AddGroup(group)
	s.Handler.GoRestfulContainer.Add(discovery.NewAPIGroupHandler(s.Serializer, group).WebService())
}
