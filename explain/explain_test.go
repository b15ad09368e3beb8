package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// now is the time of the recorded answers.
var now = time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)

// recorded are the Kubernetes API's and the adapter's answers to one
// explanation, as testdata/<case>.json holds them; APIServices not listed
// come from testdata/apiservices-ours.json.
type recorded struct {
	HPA          *autoscalingv2.HorizontalPodAutoscaler `json:"hpa"`
	Manifest     string                                 `json:"manifest"`
	Events       []corev1.Event                         `json:"events"`
	Scale        answer                                 `json:"scale"`
	Resources    map[string]string                      `json:"resources"`
	APIServices  map[string]json.RawMessage             `json:"apiServices"`
	Explanations []struct {
		// Spec is what the client must ask.
		Spec  MetricExplanationSpec `json:"spec"`
		Steps []Step                `json:"steps"`
		Error *metav1.Status        `json:"error"`
	} `json:"explanations"`
}

// answer is a recorded string answer or error.
type answer struct {
	Selector string         `json:"selector"`
	Error    *metav1.Status `json:"error"`
}

func statusErr(st *metav1.Status) error {
	if st == nil {
		return nil
	}
	return &apierrors.StatusError{ErrStatus: *st}
}

// recordedCluster answers from recorded and records what it is asked.
type recordedCluster struct {
	t     *testing.T
	rec   recorded
	asked []MetricExplanationSpec
}

func (c *recordedCluster) HPA(_ context.Context, namespace, name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	if c.rec.HPA == nil || c.rec.HPA.Namespace != namespace || c.rec.HPA.Name != name {
		return nil, apierrors.NewNotFound(autoscalingv2.Resource("horizontalpodautoscalers"), name)
	}
	return c.rec.HPA, nil
}

func (c *recordedCluster) Events(context.Context, string, string) ([]corev1.Event, error) {
	return c.rec.Events, nil
}

func (c *recordedCluster) APIService(_ context.Context, name string) (*APIService, error) {
	raw, ok := c.rec.APIServices[name]
	if !ok || string(raw) == "null" {
		return nil, apierrors.NewNotFound(apiServicesGVR.GroupResource(), name)
	}
	var e struct{ Error *metav1.Status }
	if json.Unmarshal(raw, &e) == nil && e.Error != nil {
		return nil, statusErr(e.Error)
	}
	var svc APIService
	if err := json.Unmarshal(raw, &svc); err != nil {
		c.t.Fatalf("APIService %s: %v", name, err)
	}
	return &svc, nil
}

func (c *recordedCluster) ScaleSelector(context.Context, string, autoscalingv2.CrossVersionObjectReference) (string, error) {
	return c.rec.Scale.Selector, statusErr(c.rec.Scale.Error)
}

func (c *recordedCluster) Resource(apiVersion, kind string) (string, error) {
	if r, ok := c.rec.Resources[apiVersion+" "+kind]; ok {
		return r, nil
	}
	return "", fmt.Errorf("no matches for kind %q in version %q", kind, apiVersion)
}

func (c *recordedCluster) Explain(_ context.Context, _ string, spec MetricExplanationSpec) ([]Step, error) {
	i := len(c.asked)
	c.asked = append(c.asked, spec)
	if i >= len(c.rec.Explanations) {
		c.t.Fatalf("explanation %d asked, %d recorded", i+1, len(c.rec.Explanations))
	}
	x := c.rec.Explanations[i]
	if !reflect.DeepEqual(spec, x.Spec) {
		got, _ := json.Marshal(spec)
		want, _ := json.Marshal(x.Spec)
		c.t.Errorf("explanation %d asked for\n%s\nwant\n%s", i+1, got, want)
	}
	return x.Steps, statusErr(x.Error)
}

func loadCase(t *testing.T, name string) *recordedCluster {
	t.Helper()
	var rec recorded
	for _, f := range []string{"apiservices-ours.json", name + ".json"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "apiservices-ours.json" {
			if err := json.Unmarshal(b, &rec.APIServices); err != nil {
				t.Fatal(err)
			}
			continue
		}
		base := rec.APIServices
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for k, v := range base {
			if _, ok := rec.APIServices[k]; !ok {
				rec.APIServices[k] = v
			}
		}
	}
	return &recordedCluster{t: t, rec: rec}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./explain -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./explain -update rewrites it); got:\n%s", path, got)
	}
}

// The report of each recorded case, as text and as JSON, and its verdicts:
// the failing step of each metric ("" for ✓).
func TestReports(t *testing.T) {
	for _, c := range []struct {
		name     string
		verdicts []string
		healthy  bool
	}{
		{"healthy", []string{""}, true},
		{"unknown-metric", []string{StepCatalog}, false},
		{"external-keda", []string{StepAPIService}, false},
		{"apiservice-unavailable", []string{StepAPIService}, false},
		{"prometheus-relabelled", []string{StepSource}, false},
		{"object-and-external", []string{"", StepSource}, false},
		{"not-applied", []string{StepQuery}, false},
		{"forbidden", []string{StepCatalog}, false},
		{"recovered", []string{StepHPA}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := loadCase(t, c.name)
			e := &Explainer{Cluster: cl, Now: func() time.Time { return now }}
			var r *Report
			if cl.rec.Manifest != "" {
				m, err := ReadManifest(strings.NewReader(cl.rec.Manifest))
				if err != nil {
					t.Fatal(err)
				}
				r = e.ExplainManifest(context.Background(), m.HPAs[0], m.Selectors)
			} else {
				var err error
				if r, err = e.ExplainHPA(context.Background(), cl.rec.HPA.Namespace, cl.rec.HPA.Name); err != nil {
					t.Fatal(err)
				}
			}
			if len(cl.asked) != len(cl.rec.Explanations) {
				t.Errorf("asked the adapter %d times, %d answers recorded", len(cl.asked), len(cl.rec.Explanations))
			}
			var verdicts []string
			for _, m := range r.Metrics {
				verdicts = append(verdicts, m.Verdict.Step)
			}
			if !reflect.DeepEqual(verdicts, c.verdicts) || r.Healthy() != c.healthy {
				t.Errorf("verdicts %q (healthy %v), want %q (healthy %v)", verdicts, r.Healthy(), c.verdicts, c.healthy)
			}
			var text, js bytes.Buffer
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+".txt", text.Bytes())
			golden(t, c.name+".golden.json", js.Bytes())
		})
	}
}

func TestDecide(t *testing.T) {
	ok := func(name string) Step { return Step{Name: name, Result: OK, Summary: name + " ok"} }
	failed := func(name string) Step {
		return Step{Name: name, Result: Failed, Summary: name + " broken", Fix: "fix " + name}
	}
	for _, c := range []struct {
		name  string
		steps []Step
		want  Verdict
	}{
		{"all hold", []Step{ok(StepHPA), ok(StepAPIService), ok(StepCatalog), ok(StepQuery), ok(StepSource), ok(StepValue)},
			Verdict{Result: OK, Summary: "every step holds; the adapter serves value ok"}},
		{"the first cause, not the symptom", []Step{failed(StepHPA), ok(StepAPIService), failed(StepCatalog), failed(StepValue)},
			Verdict{Result: Failed, Step: StepCatalog, Summary: "catalog broken", Fix: "fix catalog"}},
		{"the symptom when no cause fails", []Step{failed(StepHPA), ok(StepAPIService), ok(StepCatalog), {Name: StepSource, Result: Skipped}},
			Verdict{Result: Failed, Step: StepHPA, Summary: "hpa broken", Fix: "fix hpa"}},
		{"skipped steps are no verdict", []Step{{Name: StepHPA, Result: Skipped}, {Name: StepAPIService, Result: Skipped}},
			Verdict{Result: OK, Summary: "every step holds"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(c.steps); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestReadManifest(t *testing.T) {
	m, err := ReadManifest(strings.NewReader(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
---
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.HPAs) != 1 || m.HPAs[0].Namespace != "shop" || m.Selectors["Deployment/web"] != "app=web" {
		t.Errorf("got %d HPAs, selectors %v", len(m.HPAs), m.Selectors)
	}
	for _, c := range []struct{ manifest, want string }{
		{"apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: old}\n", `document 1: HorizontalPodAutoscaler "old" is autoscaling/v1; explain reads autoscaling/v2`},
		{"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: typo}\nspec: {maxReplica: 3}\n", `document 1: HorizontalPodAutoscaler "typo": json: unknown field "maxReplica"`},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", "the manifest holds no HorizontalPodAutoscaler"},
		{"a: [", "document 1:"},
	} {
		if _, err := ReadManifest(strings.NewReader(c.manifest)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.manifest, err, c.want)
		}
	}
}

func TestOwner(t *testing.T) {
	ours := &ServiceReference{Namespace: "hpa-signals", Name: "hpa-signals"}
	a := &apiServices{ours: ours}
	for _, c := range []struct {
		ns, name string
		labels   map[string]string
		want     string
	}{
		{"hpa-signals", "hpa-signals", nil, "hpa-signals"},
		{"keda", "keda-operator-metrics-apiserver", nil, "KEDA"},
		{"monitoring", "prometheus-adapter", nil, "prometheus-adapter"},
		{"custom-metrics", "api", map[string]string{"app.kubernetes.io/name": "prometheus-adapter"}, "prometheus-adapter"},
		{"datadog", "datadog-cluster-agent-metrics-api", nil, "the Datadog Cluster Agent"},
		{"kube-system", "kube-metrics-adapter", nil, "kube-metrics-adapter"},
		{"other", "hpa-signals", nil, "another hpa-signals installation"},
		{"metrics", "adapter", nil, "another adapter"},
	} {
		var svc APIService
		svc.Spec.Service = &ServiceReference{Namespace: c.ns, Name: c.name}
		svc.Metadata.Labels = c.labels
		if got := a.owner(&svc); got != c.want {
			t.Errorf("%s/%s %v: %q, want %q", c.ns, c.name, c.labels, got, c.want)
		}
	}
}
