//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// TestLocalClusterSmoke starts the local control plane, runs a Deployment
// on the kwok node, scales it, checks the identities scenarios use for RBAC
// checks, and checks that Stop leaves no process behind.
func TestLocalClusterSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	began := time.Now()
	l := startLocal(ctx, t)
	t.Logf("cluster started in %s (including the binary build or cache check); kubeconfig %s",
		time.Since(began).Round(10*time.Millisecond), l.Kubeconfig())

	const ns = "smoke"
	if err := l.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	client := l.Client()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	waitReadyPods(ctx, t, l, ns, "app=web", 2)

	// The deployment controller writes the Deployment's status meanwhile,
	// so an update with the resourceVersion just read may conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := client.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 3
		_, err = client.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("scale to 3: %v", err)
	}
	waitReadyPods(ctx, t, l, ns, "app=web", 3)

	// kubectl works against the cluster too (scenarios apply manifests with it).
	out, err := cluster.Kubectl(ctx, l, "", "get", "deployment", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}")
	if err != nil {
		t.Fatal(err)
	}
	if out != "3" {
		t.Errorf("kubectl: readyReplicas = %q, want 3", out)
	}

	checkIdentities(ctx, t, l, ns)

	rss, err := l.RSSBytes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stack RSS with 3 pods: %d MiB", rss>>20)
	procs := l.Processes()
	for _, p := range procs {
		r, err := p.RSSBytes()
		if err != nil {
			t.Error(err)
		}
		t.Logf("  %-24s pid %-7d %4d MiB", p.Name, p.PID(), r>>20)
	}
	if len(procs) != 5 {
		t.Errorf("started %d processes, want 5", len(procs))
	}

	stopBegan := time.Now()
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %s", time.Since(stopBegan).Round(10*time.Millisecond))
	for _, p := range procs {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(p.PID()))); err == nil {
			t.Errorf("%s (pid %d) still exists after Stop", p.Name, p.PID())
		}
		if cluster.ProcessGroupAlive(p.PID()) {
			t.Errorf("process group of %s (pgid %d) still has members after Stop", p.Name, p.PID())
		}
	}
}

// checkIdentities checks that a ServiceAccount token kubeconfig and a
// client-certificate kubeconfig for the same ServiceAccount are subject to
// RBAC: forbidden first, allowed once bound to the aggregated "view" role.
func checkIdentities(ctx context.Context, t *testing.T, l *cluster.Local, ns string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}}
	if _, err := l.Client().CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ServiceAccount: %v", err)
	}
	tokenKubeconfig := filepath.Join(t.TempDir(), "reader.kubeconfig")
	if err := cluster.ServiceAccountKubeconfig(ctx, l, ns, "reader", tokenKubeconfig); err != nil {
		t.Fatal(err)
	}
	certKubeconfig, err := l.ClientKubeconfig("reader-cert", "system:serviceaccount:"+ns+":reader",
		"system:serviceaccounts", "system:serviceaccounts:"+ns)
	if err != nil {
		t.Fatal(err)
	}
	identities := map[string]kubernetes.Interface{
		"token":       clientFromKubeconfig(t, tokenKubeconfig),
		"certificate": clientFromKubeconfig(t, certKubeconfig),
	}
	for name, c := range identities {
		_, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s identity without RBAC: list pods error = %v, want Forbidden", name, err)
		}
	}

	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader-view", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: ns}},
	}
	if _, err := l.Client().RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RoleBinding: %v", err)
	}
	for name, c := range identities {
		err := cluster.WaitFor(ctx, name+" identity bound to view lists 3 pods", 30*time.Second,
			func(ctx context.Context) (bool, error) {
				pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				return err == nil && len(pods.Items) == 3, err
			})
		if err != nil {
			t.Error(err)
		}
	}
}

func clientFromKubeconfig(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", path, err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client for %s: %v", path, err)
	}
	return c
}

// waitReadyPods waits until exactly want pods matching selector in ns exist
// and are Running and Ready on the kwok node.
func waitReadyPods(ctx context.Context, t *testing.T, l *cluster.Local, ns, selector string, want int) {
	t.Helper()
	var last string
	err := cluster.WaitFor(ctx, fmt.Sprintf("%d ready pods %q in %s", want, selector, ns), time.Minute,
		func(ctx context.Context) (bool, error) {
			pods, err := l.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return false, err
			}
			ready := 0
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning && podReady(&p) && p.Spec.NodeName == l.NodeName() {
					ready++
				}
			}
			last = fmt.Sprintf("%d pods, %d running+ready", len(pods.Items), ready)
			return ready == want && len(pods.Items) == want, nil
		})
	if err != nil {
		t.Fatalf("%v (last seen: %s)", err, last)
	}
	t.Logf("%d pods ready (%s)", want, last)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
