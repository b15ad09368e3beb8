package kindenv

import (
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
)

// promConfig is the part of test/kind/prometheus/prometheus.yml checked
// here; kubernetes_sd itself needs a cluster.
type promConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName        string            `yaml:"job_name"`
		RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

func loadPromConfig(t *testing.T) promConfig {
	t.Helper()
	data, err := os.ReadFile("../../kind/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c promConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("decode prometheus.yml: %v", err)
	}
	for _, sc := range c.ScrapeConfigs {
		for i, rc := range sc.RelabelConfigs {
			if err := rc.Validate(model.LegacyValidation); err != nil {
				t.Fatalf("job %s, relabel_configs[%d]: %v", sc.JobName, i, err)
			}
		}
	}
	return c
}

func TestPrometheusScrapesOftenEnough(t *testing.T) {
	c := loadPromConfig(t)
	d, err := time.ParseDuration(c.Global.ScrapeInterval)
	if err != nil || d <= 0 || d > 5*time.Second {
		t.Errorf("scrape_interval = %q, want at most 5s so a 30s rate window (demo/hpas) has enough samples", c.Global.ScrapeInterval)
	}
}

// TestPrometheusRelabelingGivesTheStackLabels feeds the kubernetes_sd
// metadata of the examples' pods (manifests/examples: HTTP services
// annotated on their Service, consumers on their pods) through the
// relabeling, and expects the labels the local stack gives the same pods
// (internal/localstack/pods.go writeTargetsLocked): namespace and pod (the
// catalog's prometheus.labels), service (the p99 Object metric on a
// Service) and deployment.
func TestPrometheusRelabelingGivesTheStackLabels(t *testing.T) {
	jobs := map[string][]*relabel.Config{}
	for _, sc := range loadPromConfig(t).ScrapeConfigs {
		jobs[sc.JobName] = sc.RelabelConfigs
	}
	servicePod := map[string]string{
		"__address__":                                               "10.244.1.7:8080",
		"__metrics_path__":                                          "/metrics",
		"__meta_kubernetes_namespace":                               "demo",
		"__meta_kubernetes_service_name":                            "sample-app-latency",
		"__meta_kubernetes_pod_name":                                "sample-app-latency-7d9f8b6c5d-x2x9z",
		"__meta_kubernetes_pod_ip":                                  "10.244.1.7",
		"__meta_kubernetes_pod_phase":                               "Running",
		"__meta_kubernetes_pod_controller_kind":                     "ReplicaSet",
		"__meta_kubernetes_pod_controller_name":                     "sample-app-latency-7d9f8b6c5d",
		"__meta_kubernetes_service_annotation_prometheus_io_scrape": "true",
		"__meta_kubernetes_service_annotation_prometheus_io_port":   "8080",
		"__meta_kubernetes_service_annotation_prometheus_io_path":   "/metrics",
	}
	consumerPod := map[string]string{
		"__address__":                                           "10.244.2.9",
		"__metrics_path__":                                      "/metrics",
		"__meta_kubernetes_namespace":                           "demo",
		"__meta_kubernetes_pod_name":                            "billing-consumer-5c7b9d8f4-abcde",
		"__meta_kubernetes_pod_ip":                              "10.244.2.9",
		"__meta_kubernetes_pod_phase":                           "Running",
		"__meta_kubernetes_pod_controller_kind":                 "ReplicaSet",
		"__meta_kubernetes_pod_controller_name":                 "billing-consumer-5c7b9d8f4",
		"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
		"__meta_kubernetes_pod_annotation_prometheus_io_port":   "8080",
		"__meta_kubernetes_pod_annotation_prometheus_io_path":   "/metrics",
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		m = maps.Clone(m)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		job      string
		meta     map[string]string
		want     map[string]string // nil: dropped
		wantAddr string
	}{
		{"HTTP pod behind an annotated Service", "kubernetes-service-endpoints", servicePod,
			map[string]string{"namespace": "demo", "pod": "sample-app-latency-7d9f8b6c5d-x2x9z", "service": "sample-app-latency", "deployment": "sample-app-latency"},
			"10.244.1.7:8080"},
		{"Service port differs from the annotated one", "kubernetes-service-endpoints", with(servicePod, "__address__", "10.244.1.7:80"),
			map[string]string{"namespace": "demo", "pod": "sample-app-latency-7d9f8b6c5d-x2x9z", "service": "sample-app-latency", "deployment": "sample-app-latency"},
			"10.244.1.7:8080"},
		{"Service not annotated", "kubernetes-service-endpoints", with(servicePod, "__meta_kubernetes_service_annotation_prometheus_io_scrape", ""), nil, ""},
		{"endpoint without a pod", "kubernetes-service-endpoints", with(servicePod, "__meta_kubernetes_pod_name", ""), nil, ""},
		{"pod of no Deployment", "kubernetes-service-endpoints", with(servicePod, "__meta_kubernetes_pod_controller_kind", "StatefulSet", "__meta_kubernetes_pod_controller_name", "web"),
			map[string]string{"namespace": "demo", "pod": "sample-app-latency-7d9f8b6c5d-x2x9z", "service": "sample-app-latency"},
			"10.244.1.7:8080"},
		{"annotated consumer pod", "kubernetes-pods", consumerPod,
			map[string]string{"namespace": "demo", "pod": "billing-consumer-5c7b9d8f4-abcde", "deployment": "billing-consumer"},
			"10.244.2.9:8080"},
		{"consumer pod not running", "kubernetes-pods", with(consumerPod, "__meta_kubernetes_pod_phase", "Pending"), nil, ""},
		{"HTTP pod itself is not annotated", "kubernetes-pods", servicePod, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgs, ok := jobs[tc.job]
			if !ok {
				t.Fatalf("no scrape job %q in prometheus.yml", tc.job)
			}
			lb := labels.NewBuilder(labels.FromMap(tc.meta))
			keep := relabel.ProcessBuilder(lb, cfgs...)
			if tc.want == nil {
				if keep {
					t.Errorf("target kept with %s, want it dropped", lb.Labels())
				}
				return
			}
			if !keep {
				t.Fatalf("target dropped, want %v", tc.want)
			}
			got := map[string]string{}
			lb.Labels().Range(func(l labels.Label) {
				if !strings.HasPrefix(l.Name, "__") {
					got[l.Name] = l.Value
				}
			})
			if !maps.Equal(got, tc.want) {
				t.Errorf("labels = %v, want %v", got, tc.want)
			}
			if addr := lb.Get("__address__"); addr != tc.wantAddr {
				t.Errorf("__address__ = %q, want %q", addr, tc.wantAddr)
			}
			if path := lb.Get("__metrics_path__"); path != "/metrics" {
				t.Errorf("__metrics_path__ = %q, want /metrics", path)
			}
		})
	}
}
