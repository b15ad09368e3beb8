package kindenv

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
)

func exampleDeployment(name string, ports ...corev1.ContainerPort) *appsv1.Deployment {
	l := map[string]string{"app.kubernetes.io/name": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: ports}}},
			},
		},
	}
}

func service(name string, selector map[string]string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo"},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Port: port}}},
	}
}

func TestLoadTargetUsesTheServiceSelectingThePods(t *testing.T) {
	client := fake.NewClientset(
		exampleDeployment("sample-app", corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		service("a-other", map[string]string{"app.kubernetes.io/name": "sample-app-latency"}, 80),
		service("b-headless-selectorless", nil, 80),
		service("sample-app", map[string]string{"app.kubernetes.io/name": "sample-app"}, 80),
		service("z-sample-app-too", map[string]string{"app.kubernetes.io/name": "sample-app"}, 8080),
	)
	got, err := loadTarget(context.Background(), client, "demo", "sample-app")
	if want := "http://sample-app.demo.svc:80"; err != nil || got != want {
		t.Errorf("loadTarget() = %q, %v, want %q", got, err, want)
	}
}

func TestLoadTargetCreatesAServiceWhenNoneSelectsThePods(t *testing.T) {
	client := fake.NewClientset(exampleDeployment("web", corev1.ContainerPort{Name: "http", ContainerPort: 8080}))
	got, err := loadTarget(context.Background(), client, "demo", "web")
	if want := "http://web-load-target.demo.svc:80"; err != nil || got != want {
		t.Fatalf("loadTarget() = %q, %v, want %q", got, err, want)
	}
	svc, err := client.CoreV1().Services("demo").Get(context.Background(), "web-load-target", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != "web" || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") || svc.Labels[managedByLabel] != managedByValue {
		t.Errorf("created Service = %+v, want it to select the pods, target port http, and carry %s", svc, managedBySelector)
	}

	noPort := fake.NewClientset(exampleDeployment("worker"))
	_, err = loadTarget(context.Background(), noPort, "demo", "worker")
	if err == nil || !strings.Contains(err.Error(), "no Service selects the pods of demo/worker, and its first container declares no port") {
		t.Errorf("loadTarget() without Service or port = %v, want an error saying both", err)
	}
}

func TestLoadDeployment(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rps      float64
		load     loadgen.Shape
		wantArgs []string
	}{
		{"plain", 150, loadgen.Shape{}, []string{"--mode=load", "--target-url=http://sample-app.demo.svc:80", "--rps=150",
			"--max-in-flight=1000", "--request-timeout=10s", "--reconnect-interval=1s"}},
		{"holding goroutines", 12.5, loadgen.Shape{Goroutines: 40, Hold: 4 * time.Second}, []string{"--mode=load", "--target-url=http://sample-app.demo.svc:80", "--rps=12.5",
			"--max-in-flight=1000", "--request-timeout=10s", "--reconnect-interval=1s", "--goroutines=40", "--hold=4s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := loadDeployment("demo", "sample-app", "http://sample-app.demo.svc:80", tc.rps, tc.load)
			if d.Name != "load-sample-app" || d.Namespace != "demo" || d.Labels[managedByLabel] != managedByValue {
				t.Errorf("Deployment %s/%s labels %v, want demo/load-sample-app managed by %s", d.Namespace, d.Name, d.Labels, managedByValue)
			}
			if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("strategy %q, want Recreate so an old and a new load never overlap", d.Spec.Strategy.Type)
			}
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != SampleAppImage || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %s (%s), want %s IfNotPresent", c.Image, c.ImagePullPolicy, SampleAppImage)
			}
			if !slices.Equal(c.Args, tc.wantArgs) {
				t.Errorf("args = %q, want %q", c.Args, tc.wantArgs)
			}
			// The workload's own selector must not pick up the load's pods.
			if d.Spec.Template.Labels["app.kubernetes.io/name"] == "sample-app" {
				t.Errorf("load pods carry the workload's labels %v", d.Spec.Template.Labels)
			}
			checkRestricted(t, d.Spec.Template.Spec)
		})
	}
}

// checkRestricted checks what the restricted Pod Security Standard (the
// demo namespace enforces it) requires.
func checkRestricted(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	sc, c := pod.SecurityContext, pod.Containers[0].SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v, want runAsNonRoot and the RuntimeDefault seccomp profile", sc)
	}
	if c == nil || c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation || c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v, want no privilege escalation and ALL capabilities dropped", c)
	}
}

func TestApplyDeploymentReplacesTheLoad(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	if err := applyDeployment(ctx, client, loadDeployment("demo", "sample-app", "http://x", 100, loadgen.Shape{})); err != nil {
		t.Fatal(err)
	}
	if err := applyDeployment(ctx, client, loadDeployment("demo", "sample-app", "http://x", 300, loadgen.Shape{})); err != nil {
		t.Fatal(err)
	}
	d, err := client.AppsV1().Deployments("demo").Get(ctx, "load-sample-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--rps=300") || slices.Contains(args, "--rps=100") {
		t.Errorf("args after the second apply = %q, want --rps=300 only", args)
	}
	if err := deleteAndWait(ctx, client, "demo", "load-sample-app", time.Second); err != nil {
		t.Errorf("deleteAndWait() = %v", err)
	}
	if err := deleteAndWait(ctx, client, "demo", "load-sample-app", time.Second); err != nil {
		t.Errorf("deleteAndWait() of a missing load = %v, want nil", err)
	}
}

func TestProduceJob(t *testing.T) {
	j := produceJob("demo.orders", 3000)
	if j.Namespace != kafkaNamespace || j.GenerateName != "produce-" || j.Labels[managedByLabel] != managedByValue {
		t.Errorf("Job %s/%s* labels %v, want kafka/produce-* managed by %s", j.Namespace, j.GenerateName, j.Labels, managedByValue)
	}
	if *j.Spec.BackoffLimit != 0 || j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("backoffLimit %d, restartPolicy %s: want no retry, so a burst is never produced twice", *j.Spec.BackoffLimit, j.Spec.Template.Spec.RestartPolicy)
	}
	want := []string{"--mode=produce", "--brokers=kafka.kafka.svc:9092", "--topic=demo.orders", "--messages=3000", "--produce-timeout=2m"}
	if args := j.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, want) {
		t.Errorf("args = %q, want %q", args, want)
	}
	checkRestricted(t, j.Spec.Template.Spec)
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv("KIND_CLUSTER_NAME", "mine")
	t.Setenv("KEEP_CLUSTER", "1")
	if o := OptionsFromEnv(); o.ClusterName != "mine" || !o.Keep || !o.Reuse {
		t.Errorf("OptionsFromEnv() = %+v, want cluster mine, kept and reused", o)
	}
	t.Setenv("KEEP_CLUSTER", "")
	if o := OptionsFromEnv(); o.Keep || o.Reuse {
		t.Errorf("OptionsFromEnv() without KEEP_CLUSTER = %+v, want neither kept nor reused", o)
	}
}

// TestManifestsNameTheImages checks that the kustomizations under test/kind
// and the examples name the images this package loads and tags.
func TestManifestsNameTheImages(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl not in PATH")
	}
	for dir, want := range map[string]string{
		"../../kind/adapter":   "image: " + AdapterImage,
		"../../kind/workloads": "image: " + SampleAppImage,
		"../../../demo/hpas":   "image: " + examplesSampleAppImage,
	} {
		out, err := exec.Command("kubectl", "kustomize", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl kustomize %s has no %q", dir, want)
		}
	}
}
