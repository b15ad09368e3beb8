package prometheus

import (
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
)

// BenchmarkBuildQuery measures building the query of one request: a preset
// entry, a pods scope and a selector with a set, a label and a parameter.
// It runs on every request that is not answered from memory.
func BenchmarkBuildQuery(b *testing.B) {
	m := config.Default().Lookup("http_requests_per_second") // compiled, as served
	sel, err := labels.Parse("code in (500,503),method=GET,window=5m")
	if err != nil {
		b.Fatal(err)
	}
	s := podScope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildQuery(m, s, sel); err != nil {
			b.Fatal(err)
		}
	}
}
