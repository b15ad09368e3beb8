package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// apiServiceStatus is the part of an apiregistration.k8s.io/v1 APIService
// that WaitAPIServiceAvailable reads; decoding it by hand spares the module
// a dependency on k8s.io/kube-aggregator.
type apiServiceStatus struct {
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
	} `json:"status"`
}

// WaitAPIServiceAvailable waits until the APIService name (e.g.
// "v1beta1.custom.metrics.k8s.io") reports Available=True. On timeout the
// error carries the last reason and message the aggregator gave.
//
// Available=True is written by the aggregator's availability controller;
// the proxy in the same kube-apiserver learns of it through its own
// informer a moment later, so the first proxied request may still get a
// 503: poll it too.
func WaitAPIServiceAvailable(ctx context.Context, c Cluster, name string, timeout time.Duration) error {
	return WaitFor(ctx, "APIService "+name+" Available", timeout, func(ctx context.Context) (bool, error) {
		raw, err := c.Client().Discovery().RESTClient().Get().
			AbsPath("/apis/apiregistration.k8s.io/v1/apiservices/" + name).DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("get APIService %s: %w", name, err)
		}
		var svc apiServiceStatus
		if err := json.Unmarshal(raw, &svc); err != nil {
			return false, fmt.Errorf("decode APIService %s: %w", name, err)
		}
		for _, cond := range svc.Status.Conditions {
			if cond.Type == "Available" {
				if cond.Status == "True" {
					return true, nil
				}
				return false, fmt.Errorf("APIService %s not available: %s: %s", name, cond.Reason, cond.Message)
			}
		}
		return false, fmt.Errorf("APIService %s has no Available condition yet", name)
	})
}
