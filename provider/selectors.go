package provider

import (
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	genericapiserver "k8s.io/apiserver/pkg/server"
)

// metricsAPIGroups are the API groups whose selectors WithSelectorCheck
// checks.
var metricsAPIGroups = map[string]bool{"custom.metrics.k8s.io": true, "external.metrics.k8s.io": true}

// selectorParameters are the query parameters that carry label selectors
// on the metrics APIs.
var selectorParameters = []string{"metricLabelSelector", "labelSelector"}

// WithSelectorCheck answers a metrics API request whose labelSelector or
// metricLabelSelector does not parse with 400 and a message saying what is
// wrong, before handler sees it: custom-metrics-apiserver returns a
// metricLabelSelector it cannot parse as a 500. It reads the request info
// that the generic API server's handler chain adds; s encodes the Status.
func WithSelectorCheck(handler http.Handler, s runtime.NegotiatedSerializer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if info, ok := request.RequestInfoFrom(req.Context()); ok && info.IsResourceRequest && metricsAPIGroups[info.APIGroup] {
			query := req.URL.Query()
			for _, param := range selectorParameters {
				for _, sel := range query[param] {
					if _, err := labels.Parse(sel); err != nil {
						responsewriters.ErrorNegotiated(apierrors.NewBadRequest(selectorError(param, sel, err)), s, schema.GroupVersion{}, w, req)
						return
					}
				}
			}
		}
		handler.ServeHTTP(w, req)
	})
}

func selectorError(param, sel string, err error) string {
	return fmt.Sprintf("%s %q is not a valid label selector: %v. A selector is a comma-separated list of key=value, key!=value, "+
		"key in (v1,v2) or key notin (v1,v2), whose values are label values (letters, digits, '-', '_' and '.'), "+
		"not regular expressions or PromQL", param, sel, err)
}

// InstallSelectorCheck adds WithSelectorCheck to c's handler chain, inside
// authentication and authorization, so only a caller allowed to ask gets
// the answer. Call it before the server is built from c.
func InstallSelectorCheck(c *genericapiserver.Config) {
	build := c.BuildHandlerChainFunc
	if build == nil {
		build = genericapiserver.DefaultBuildHandlerChain
	}
	c.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return build(WithSelectorCheck(h, c.Serializer), c)
	}
}
