//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hpa-signals/hpa-signals/explain"
	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// explainWorkloads are the Deployments the explain scenarios point HPAs
// at: explain-web runs the sample-app, explain-idle runs a container the
// stack does not scrape (no series), explain-relabeled runs the sample-app
// scraped through the relabelling job (kubernetes_namespace,
// kubernetes_pod_name). demo enforces the restricted Pod Security
// Standard.
const explainWorkloads = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: explain-web, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: explain-web}}
  template:
    metadata: {labels: {app.kubernetes.io/name: explain-web}}
    spec: {securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: hpa-signals-sample-app, args: [--workers=4, --service-time=20ms], securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: explain-idle, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: explain-idle}}
  template:
    metadata: {labels: {app.kubernetes.io/name: explain-idle}}
    spec: {securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: registry.k8s.io/pause:3.10, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: explain-relabeled, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: explain-relabeled}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: explain-relabeled}
      annotations: {` + localstack.RelabeledScrapeAnnotation + `: "true"}
    spec: {securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: hpa-signals-sample-app, args: [--workers=4, --service-time=20ms], securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}
`

// hpaManifest is an HPA of demo on target with one metric (YAML of an
// autoscaling/v2 MetricSpec, indented for the metrics list).
func hpaManifest(name, target, metric string) string {
	return fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: %s, namespace: demo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  minReplicas: 1
  maxReplicas: 4
  metrics:
%s
`, name, target, metric)
}

// explainer runs the kubectl plugin as a user that may explain in demo
// only (ClusterRole hpa-signals-explain bound in demo).
type explainer struct {
	bin, kubeconfig, cacheDir string
}

// explainRun is one run of kubectl hpa-signals explain.
type explainRun struct {
	text string
	code int
}

func (x *explainer) run(ctx context.Context, t *testing.T, stdin string, args ...string) explainRun {
	t.Helper()
	full := append([]string{"explain", "--kubeconfig", x.kubeconfig, "--cache-dir", x.cacheDir}, args...)
	cmd := exec.CommandContext(ctx, x.bin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("kubectl-hpa_signals %s: %v", strings.Join(args, " "), err)
	}
	r := explainRun{text: stdout.String(), code: cmd.ProcessState.ExitCode()}
	if r.code == 2 {
		t.Fatalf("kubectl-hpa_signals %s: exit 2: %s", strings.Join(args, " "), stderr.String())
	}
	return r
}

// report runs explain with -o json and returns the single report.
func (x *explainer) report(ctx context.Context, t *testing.T, stdin string, args ...string) *explain.Report {
	t.Helper()
	r := x.run(ctx, t, stdin, append(args, "-o", "json")...)
	var rep explain.Report
	if stdin != "" {
		var reps []explain.Report
		if err := json.Unmarshal([]byte(r.text), &reps); err != nil || len(reps) != 1 {
			t.Fatalf("explain -o json of a manifest: %v\n%s", err, r.text)
		}
		rep = reps[0]
	} else if err := json.Unmarshal([]byte(r.text), &rep); err != nil {
		t.Fatalf("explain -o json: %v\n%s", err, r.text)
	}
	if (r.code == 0) != rep.Healthy() {
		t.Errorf("exit status %d for a report whose health is %v", r.code, rep.Healthy())
	}
	return &rep
}

// wantVerdict checks the text report's verdict line and fix, and returns
// the text.
func wantVerdict(t *testing.T, r explainRun, verdict, fix string) {
	t.Helper()
	lines := strings.Split(r.text, "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, "  verdict: ") && strings.Contains(l, verdict) {
			found = true
			if fix != "" && (i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "  fix: ") || !strings.Contains(lines[i+1], fix)) {
				t.Errorf("the verdict's fix lacks %q:\n%s", fix, r.text)
			}
		}
	}
	if !found {
		t.Errorf("no verdict line with %q:\n%s", verdict, r.text)
	}
	wantCode := 1
	if strings.HasPrefix(verdict, "✓") {
		wantCode = 0
	}
	if r.code != wantCode {
		t.Errorf("exit status %d, want %d", r.code, wantCode)
	}
}

// step returns the named step of the report's only metric.
func step(t *testing.T, r *explain.Report, name string) explain.Step {
	t.Helper()
	if len(r.Metrics) != 1 {
		t.Fatalf("%d metrics in the report, want 1", len(r.Metrics))
	}
	for _, s := range r.Metrics[0].Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no %s step: %+v", name, r.Metrics[0].Steps)
	return explain.Step{}
}

// explainScenario (local stack): kubectl hpa-signals explain, run as a
// user with the explain role in demo only, names the step that breaks
// and its fix for each thing the scenarios break, one at a time, and
// answers ✓ for a healthy HPA. The APIService and Prometheus scenarios
// break what the other scenarios use, so they run after them, in order.
func explainScenario(ctx context.Context, t *testing.T, e env.Env) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("needs the local stack: it relabels a scrape job, reads Kafka directly and points APIServices elsewhere")
	}
	c := e.Cluster()
	x := newExplainer(ctx, t, c, s.PluginBinary())
	if err := cluster.Apply(ctx, c, explainWorkloads); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"explain-web", "explain-idle", "explain-relabeled"} {
		waitReadyPod(ctx, t, c, "app.kubernetes.io/name="+d)
	}
	artifacts := os.Getenv("HPA_SIGNALS_EXPLAIN_OUT")
	keep := func(name string, r explainRun) {
		t.Logf("kubectl hpa-signals explain (%s):\n%s", name, r.text)
		if artifacts != "" {
			if err := os.WriteFile(filepath.Join(artifacts, name+".txt"), []byte(r.text), 0o644); err != nil {
				t.Error(err)
			}
		}
	}

	t.Run("Healthy", func(t *testing.T) {
		waitHPA(ctx, t, c, qpsHPA, "reports its metric", scaleTimeout, reporting)
		r := x.run(ctx, t, "", "-n", demoNamespace, qpsHPA)
		keep("healthy", r)
		wantVerdict(t, r, "✓ every step holds; the adapter serves ", "")
		for _, st := range x.report(ctx, t, "", "-n", demoNamespace, qpsHPA).Metrics[0].Steps {
			if st.Result != explain.OK {
				t.Errorf("step %s of a healthy HPA: %s %s", st.Name, st.Result, st.Summary)
			}
		}
	})

	t.Run("NotInCatalog", func(t *testing.T) {
		const name = "explain-typo"
		applyHPA(ctx, t, c, hpaManifest(name, "explain-web", `  - type: Pods
    pods: {metric: {name: http_request_per_second}, target: {type: AverageValue, averageValue: "50"}}`))
		waitHPA(ctx, t, c, name, "reports the metric missing", time.Minute, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			return condition(h, autoscalingv2.ScalingActive) == corev1.ConditionFalse
		})
		r := x.run(ctx, t, "", "-n", demoNamespace, name)
		keep("broken", r)
		wantVerdict(t, r, `✗ catalog: metric "http_request_per_second" is not in the catalog`, "rename the metric in the HPA to http_requests_per_second")
		rep := x.report(ctx, t, "", "-n", demoNamespace, name)
		if st := step(t, rep, explain.StepHPA); st.Result != explain.Failed || !strings.Contains(st.Summary, "the HPA reads <unknown>") {
			t.Errorf("hpa step: %+v, want the HPA's <unknown>", st)
		}
	})

	t.Run("SelectorKeyNotALabel", func(t *testing.T) {
		r := x.run(ctx, t, hpaManifest("explain-selector", "explain-web", `  - type: Pods
    pods:
      metric: {name: http_requests_per_second, selector: {matchLabels: {app.kubernetes.io/name: explain-web}}}
      target: {type: AverageValue, averageValue: "50"}`), "-f", "-")
		keep("selector", r)
		wantVerdict(t, r, `✗ query: the adapter answers 400 Bad Request: metric "http_requests_per_second" in namespace "demo": invalid metric selector`,
			`remove "app.kubernetes.io/name" from the metric selector`)
		if !strings.Contains(r.text, "HPA (not applied; what it would read) demo/explain-selector") {
			t.Errorf("a manifest's report does not say it is not applied:\n%s", r.text)
		}
	})

	t.Run("PodsWithoutSeries", func(t *testing.T) {
		r := x.run(ctx, t, hpaManifest("explain-idle", "explain-idle", `  - type: Pods
    pods: {metric: {name: go_goroutines}, target: {type: AverageValue, averageValue: "500"}}`), "-f", "-")
		keep("no-series", r)
		wantVerdict(t, r, "✗ source: none of the pods has series of go_goroutines: explain-idle-", "make sure Prometheus scrapes these pods")
	})

	t.Run("PrometheusRelabelsNamespace", func(t *testing.T) {
		const name = "explain-relabeled"
		applyHPA(ctx, t, c, hpaManifest(name, name, `  - type: Pods
    pods: {metric: {name: go_goroutines}, target: {type: AverageValue, averageValue: "500"}}`))
		var r explainRun
		err := cluster.WaitFor(ctx, "explain to find the relabelled series", time.Minute, func(ctx context.Context) (bool, error) {
			r = x.run(ctx, t, "", "-n", demoNamespace, name)
			return until(strings.Contains(r.text, "kubernetes_namespace"), r.text)
		})
		if err != nil {
			t.Fatal(err)
		}
		keep("relabeled", r)
		wantVerdict(t, r, `✗ source: the pods' series of go_goroutines carry kubernetes_namespace="demo" and kubernetes_pod_name=<name>, not namespace="demo" and pod=<name>`,
			"set prometheus.labels.namespace: kubernetes_namespace and prometheus.labels.pod: kubernetes_pod_name in the catalog")
	})

	t.Run("KafkaGroupNeverCommitted", func(t *testing.T) {
		const group = "demo.explain-idle"
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
		if err != nil {
			t.Fatal(err)
		}
		// The client joins the group as it polls, until it is closed.
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			for {
				if fs := cl.PollFetches(ctx); fs.IsClientClosed() || ctx.Err() != nil {
					return
				}
			}
		}()
		defer func() { cl.Close(); <-polled }()
		manifest := hpaManifest("explain-kafka", "explain-web", `  - type: External
    external: {metric: {name: kafka_consumer_lag, selector: {matchLabels: {group: `+group+`}}}, target: {type: AverageValue, averageValue: "1000"}}`)
		var r explainRun
		err = cluster.WaitFor(ctx, "the consumer to join "+group, 30*time.Second, func(ctx context.Context) (bool, error) {
			r = x.run(ctx, t, manifest, "-f", "-")
			return until(strings.Contains(r.text, "state Stable, 1 member"), r.text)
		})
		if err != nil {
			t.Fatal(err)
		}
		keep("never-committed", r)
		wantVerdict(t, r, `✗ source: consumer group "demo.explain-idle" has never committed an offset`, "name its topic with the topic selector key")
	})

	t.Run("KafkaGroupOfAnotherNamespace", func(t *testing.T) {
		if err := commitOffsets(ctx, s.KafkaBrokers(), "team-b.explain", topic, 0); err != nil {
			t.Fatal(err)
		}
		explainGroup := func(group string) explainRun {
			return x.run(ctx, t, hpaManifest("explain-foreign", "explain-web", `  - type: External
    external: {metric: {name: kafka_consumer_lag, selector: {matchLabels: {group: `+group+`}}}, target: {type: AverageValue, averageValue: "1000"}}`), "-f", "-")
		}
		foreign, unknown := explainGroup("team-b.explain"), explainGroup("team-b.nothing")
		keep("foreign-group", foreign)
		wantVerdict(t, foreign, `✗ query: consumer group "team-b.explain" is not one namespace "demo" reads, so the adapter answers 404 like for a group that does not exist`,
			`name a consumer group namespace "demo" owns (matching "demo.*"`)
		if a, b := strings.ReplaceAll(foreign.text, "team-b.explain", "G"), strings.ReplaceAll(unknown.text, "team-b.nothing", "G"); a != b {
			t.Errorf("a group of team-b is explained otherwise than one that does not exist:\n%s\n%s", foreign.text, unknown.text)
		}
	})

	t.Run("OnlyItsOwnNamespace", func(t *testing.T) {
		// The explainer may explain in demo only: in namespace other the
		// adapter is not asked.
		r := x.run(ctx, t, strings.Replace(hpaManifest("explain-other", "explain-web", `  - type: Pods
    pods: {metric: {name: go_goroutines}, target: {type: AverageValue, averageValue: "500"}}`), "namespace: demo", "namespace: other", 1), "-f", "-")
		wantVerdict(t, r, `✗ catalog: cannot ask the adapter: metricexplanations.explain.hpa-signals.io is forbidden`, "ask for the ClusterRole hpa-signals-explain in namespace other")
	})

	t.Run("APIServiceUnavailable", func(t *testing.T) {
		const name = "v1beta1.external.metrics.k8s.io"
		port, err := cluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		restore := patchAPIService(ctx, t, c, name, fmt.Sprintf(`{"spec":{"service":{"port":%d}}}`, port))
		defer restore()
		waitAPIServiceUnavailable(ctx, t, c, name)
		r := x.run(ctx, t, "", "-n", demoNamespace, billingHPA)
		keep("apiservice-unavailable", r)
		wantVerdict(t, r, "✗ apiservice: v1beta1.external.metrics.k8s.io is not Available: FailedDiscoveryCheck", "the aggregator cannot reach Service hpa-signals/hpa-signals")
	})

	t.Run("APIServiceOfAnotherAdapter", func(t *testing.T) {
		const name = "v1beta1.external.metrics.k8s.io"
		if err := cluster.Apply(ctx, c, `apiVersion: v1
kind: Namespace
metadata: {name: keda}
---
apiVersion: v1
kind: Service
metadata: {name: keda-operator-metrics-apiserver, namespace: keda}
spec: {type: ExternalName, externalName: 127.0.0.1, ports: [{name: https, port: 443}]}
`); err != nil {
			t.Fatal(err)
		}
		restore := patchAPIService(ctx, t, c, name, `{"spec":{"service":{"namespace":"keda","name":"keda-operator-metrics-apiserver","port":443}}}`)
		defer restore()
		r := x.run(ctx, t, "", "-n", demoNamespace, billingHPA)
		keep("apiservice-keda", r)
		wantVerdict(t, r, "✗ apiservice: v1beta1.external.metrics.k8s.io is served by KEDA (Service keda/keda-operator-metrics-apiserver), not by hpa-signals",
			"external.metrics.k8s.io has one adapter per cluster")
	})

	t.Run("PrometheusDown", func(t *testing.T) {
		waitHPA(ctx, t, c, qpsHPA, "reports its metric", scaleTimeout, reporting)
		if err := e.StopPrometheus(ctx); err != nil {
			t.Fatal(err)
		}
		restarted := false
		defer func() {
			if !restarted {
				_ = e.StartPrometheus(context.Background())
			}
		}()
		explainQPS := func(want string, within time.Duration) explainRun {
			var r explainRun
			err := cluster.WaitFor(ctx, "explain to say "+want, within, func(ctx context.Context) (bool, error) {
				r = x.run(ctx, t, "", "-n", demoNamespace, qpsHPA)
				return until(strings.Contains(r.text, want), r.text)
			})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		// Within --max-staleness (10s in the stack) the HPA still gets the
		// last value; then the error.
		r := explainQPS("cache: serving a stale value", 30*time.Second)
		keep("prometheus-stale", r)
		wantVerdict(t, r, "✗ source: Prometheus does not answer the query", "Prometheus is unreachable or failing for the adapter")
		r = explainQPS("the HPA gets 503 Service Unavailable", 30*time.Second)
		keep("prometheus-failing", r)
		wantVerdict(t, r, "✗ source: Prometheus does not answer the query", "Prometheus is unreachable or failing for the adapter")
		if err := e.StartPrometheus(ctx); err != nil {
			t.Fatal(err)
		}
		restarted = true
		// Prometheus kept its data over the restart, so its data has a
		// hole; the 30s window is refused until 30s after its first
		// scrape, and explain says so.
		r = explainQPS("✗ source      Prometheus restarted at ", 30*time.Second)
		keep("prometheus-restarted", r)
		if !strings.Contains(r.text, "the query's window is 30s: values resume, over the whole window,") {
			t.Errorf("explain after the restart does not say when the 30s window resumes:\n%s", r.text)
		}
		explainQPS("verdict: ✓", 90*time.Second)
	})

	// Back to what the scenarios after these expect.
	for _, name := range localstack.APIServices {
		if err := cluster.WaitAPIServiceAvailable(ctx, c, name, time.Minute); err != nil {
			t.Error(err)
		}
	}
	if _, err := cluster.Kubectl(ctx, c, "", "delete", "--ignore-not-found", "-n", demoNamespace, "hpa/explain-typo", "hpa/explain-relabeled",
		"deployment/explain-web", "deployment/explain-idle", "deployment/explain-relabeled"); err != nil {
		t.Error(err)
	}
	if _, err := cluster.Kubectl(ctx, c, "", "delete", "--ignore-not-found", "--wait=false", "namespace", "keda"); err != nil {
		t.Error(err)
	}
}

// newExplainer runs the plugin bin as a ServiceAccount of demo with the
// ClusterRole hpa-signals-explain of manifests/base bound in demo.
func newExplainer(ctx context.Context, t *testing.T, c cluster.Cluster, bin string) *explainer {
	t.Helper()
	dir := t.TempDir()
	cs := c.Client()
	var errs []error
	_, err := cs.CoreV1().ServiceAccounts(demoNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "explainer"}}, metav1.CreateOptions{})
	errs = append(errs, err)
	_, err = cs.RbacV1().RoleBindings(demoNamespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "explainer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "hpa-signals-explain"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "explainer", Namespace: demoNamespace}},
	}, metav1.CreateOptions{})
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	kubeconfig := filepath.Join(dir, "explainer.kubeconfig")
	if err := cluster.ServiceAccountKubeconfig(ctx, c, demoNamespace, "explainer", kubeconfig); err != nil {
		t.Fatal(err)
	}
	return &explainer{bin: bin, kubeconfig: kubeconfig, cacheDir: filepath.Join(dir, "cache")}
}

func applyHPA(ctx context.Context, t *testing.T, c cluster.Cluster, manifest string) {
	t.Helper()
	if err := cluster.Apply(ctx, c, manifest); err != nil {
		t.Fatal(err)
	}
}

// patchAPIService merge-patches an APIService and returns a function that
// puts its spec.service back and waits until it is Available.
func patchAPIService(ctx context.Context, t *testing.T, c cluster.Cluster, name, patch string) func() {
	t.Helper()
	before, err := cluster.Kubectl(ctx, c, "", "get", "apiservice", name, "-o", "jsonpath={.spec.service}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Kubectl(ctx, c, "", "patch", "apiservice", name, "--type=merge", "-p", patch); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := cluster.Kubectl(context.Background(), c, "", "patch", "apiservice", name, "--type=merge", "-p", `{"spec":{"service":`+before+`}}`); err != nil {
			t.Error(err)
		}
		if err := cluster.WaitAPIServiceAvailable(context.Background(), c, name, time.Minute); err != nil {
			t.Error(err)
		}
	}
}

// until is a WaitFor condition's answer: done when ok, otherwise not yet,
// with state as the last thing seen.
func until(ok bool, state string) (bool, error) {
	if ok {
		return true, nil
	}
	return false, errors.New(state)
}

// waitReadyPod waits until a pod of demo matching selector is Running and
// Ready.
func waitReadyPod(ctx context.Context, t *testing.T, c cluster.Cluster, selector string) {
	t.Helper()
	err := cluster.WaitFor(ctx, "a ready pod "+selector, time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := c.Client().CoreV1().Pods(demoNamespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && podReady(&p) {
				return true, nil
			}
		}
		return until(false, fmt.Sprintf("%d pods, none Running and Ready", len(pods.Items)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitAPIServiceUnavailable waits until the aggregator reports the
// APIService not Available.
func waitAPIServiceUnavailable(ctx context.Context, t *testing.T, c cluster.Cluster, name string) {
	t.Helper()
	err := cluster.WaitFor(ctx, "APIService "+name+" not Available", time.Minute, func(ctx context.Context) (bool, error) {
		out, err := cluster.Kubectl(ctx, c, "", "get", "apiservice", name, "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
		if err != nil {
			return false, err
		}
		return until(strings.TrimSpace(out) == "False", "Available="+out)
	})
	if err != nil {
		t.Fatal(err)
	}
}
