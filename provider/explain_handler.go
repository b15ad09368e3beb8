package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"github.com/hpa-signals/hpa-signals/explain"
)

// Bounds of the explain API. An explanation asks the sources up to about
// maxDiagnosticQueries+2 questions, so at most maxConcurrentExplanations
// run at once; a request that finds no slot within explainSlotWait is
// refused with 429 and counted as LimitExplanations. Each runs for at most
// explainTimeout.
const (
	maxConcurrentExplanations = 2
	explainSlotWait           = 5 * time.Second
	explainTimeout            = 30 * time.Second
	maxExplainBody            = 1 << 20
)

// InstallExplain serves the explain API (package explain) on s, for the
// APIService v1alpha1.explain.hpa-signals.io: its discovery documents and
// POST /apis/explain.hpa-signals.io/v1alpha1/namespaces/NS/metricexplanations.
//
// The handler runs inside the server's authentication and authorization:
// the aggregator has authorised the caller to create metricexplanations in
// NS, and the adapter's delegated authorization checks it again. The
// answer is about namespace NS only: Explain takes NS as the request's
// namespace, like a metrics request made in NS, with the same scope.
func InstallExplain(s *genericapiserver.GenericAPIServer, p *Provider) {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: explain.GroupVersion.String(), Version: explain.Version}
	group := metav1.APIGroup{
		TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:             explain.Group,
		Versions:         []metav1.GroupVersionForDiscovery{gv},
		PreferredVersion: gv,
	}
	resources := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: explain.GroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: explain.Resource, Namespaced: true, Kind: explain.Kind, Verbs: metav1.Verbs{"create"}}},
	}
	s.DiscoveryGroupManager.AddGroup(group)
	s.AggregatedDiscoveryGroupManager.AddGroupVersion(explain.Group, apidiscoveryv2.APIVersionDiscovery{
		Version:   explain.Version,
		Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
		Resources: []apidiscoveryv2.APIResourceDiscovery{{
			Resource:     explain.Resource,
			ResponseKind: &metav1.GroupVersionKind{Group: explain.Group, Version: explain.Version, Kind: explain.Kind},
			Scope:        apidiscoveryv2.ScopeNamespace,
			Verbs:        []string{"create"},
		}},
	})
	h := &explainHandler{p: p, serializer: s.Serializer, slots: semaphore.NewWeighted(maxConcurrentExplanations), group: group, resources: resources}
	s.Handler.NonGoRestfulMux.Handle("/apis/"+explain.Group, h)
	s.Handler.NonGoRestfulMux.HandlePrefix("/apis/"+explain.Group+"/", h)
}

type explainHandler struct {
	p          *Provider
	serializer runtime.NegotiatedSerializer
	slots      *semaphore.Weighted
	group      metav1.APIGroup
	resources  metav1.APIResourceList
}

func (h *explainHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path := strings.TrimSuffix(req.URL.Path, "/")
	switch path {
	case "/apis/" + explain.Group:
		h.discovery(w, req, h.group)
		return
	case "/apis/" + explain.GroupVersion.String():
		h.discovery(w, req, h.resources)
		return
	}
	info, ok := request.RequestInfoFrom(req.Context())
	if !ok || !info.IsResourceRequest || info.Resource != explain.Resource || info.Namespace == "" || info.Name != "" || info.Subresource != "" || info.APIVersion != explain.Version {
		h.error(w, req, apierrors.NewNotFound(explain.GroupVersion.WithResource(explain.Resource).GroupResource(), path))
		return
	}
	if req.Method != http.MethodPost {
		h.error(w, req, apierrors.NewMethodNotSupported(explain.GroupVersion.WithResource(explain.Resource).GroupResource(), info.Verb))
		return
	}
	var me explain.MetricExplanation
	dec := json.NewDecoder(io.LimitReader(req.Body, maxExplainBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&me); err != nil {
		h.error(w, req, apierrors.NewBadRequest(fmt.Sprintf("the body is not a %s: %v", explain.Kind, err)))
		return
	}
	if me.APIVersion != "" && me.APIVersion != explain.GroupVersion.String() || me.Kind != "" && me.Kind != explain.Kind {
		h.error(w, req, apierrors.NewBadRequest(fmt.Sprintf("the body is a %s %s; post a %s %s", me.APIVersion, me.Kind, explain.GroupVersion, explain.Kind)))
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), explainTimeout)
	defer cancel()
	if err := h.acquire(ctx); err != nil {
		h.error(w, req, err)
		return
	}
	defer h.slots.Release(1)
	steps, err := h.p.Explain(ctx, info.Namespace, me.Spec)
	if err != nil {
		h.error(w, req, err)
		return
	}
	me.APIVersion, me.Kind = explain.GroupVersion.String(), explain.Kind
	me.Status.Steps = steps
	writeJSON(w, http.StatusOK, me)
}

// acquire takes an explanation slot, waiting at most explainSlotWait.
func (h *explainHandler) acquire(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, explainSlotWait)
	defer cancel()
	if err := h.slots.Acquire(wctx, 1); err != nil {
		h.p.Metrics.LimitHit(LimitExplanations)
		return apierrors.NewTooManyRequests(fmt.Sprintf("%d explanations are running, the most the adapter runs at once; ask again in a moment", maxConcurrentExplanations), 0)
	}
	return nil
}

func (h *explainHandler) discovery(w http.ResponseWriter, req *http.Request, doc any) {
	if req.Method != http.MethodGet {
		h.error(w, req, apierrors.NewMethodNotSupported(explain.GroupVersion.WithResource("").GroupResource(), req.Method))
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (h *explainHandler) error(w http.ResponseWriter, req *http.Request, err error) {
	responsewriters.ErrorNegotiated(err, h.serializer, explain.GroupVersion, w, req)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
