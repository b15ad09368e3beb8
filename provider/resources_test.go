package provider_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/provider"
)

func TestBuiltinMapper(t *testing.T) {
	m := provider.BuiltinMapper()
	for in, want := range map[schema.GroupResource]string{
		{Resource: "pod"}:                        "pods",
		{Resource: "namespaces"}:                 "namespaces",
		{Resource: "service"}:                    "services",
		{Resource: "deployment"}:                 "deployments.apps",
		{Group: "apps", Resource: "statefulset"}: "statefulsets.apps",
		{Resource: "job"}:                        "jobs.batch",
		{Resource: "ingress"}:                    "ingresses.networking.k8s.io",
		{Resource: "instance"}:                   "", // a label, not a resource
		{Group: "cheese.io", Resource: "brand"}:  "", // not built in
	} {
		got, err := m(in)
		if want == "" {
			if err == nil {
				t.Errorf("%s: %s, want an error", in, got)
			}
			continue
		}
		if err != nil || got.String() != want {
			t.Errorf("%s: %s, %v; want %s", in, got, err, want)
		}
	}
}
