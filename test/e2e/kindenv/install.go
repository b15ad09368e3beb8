package kindenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// install puts everything but the scenarios' workloads into the cluster
// and waits for it.
func (e *Env) install(ctx context.Context) error {
	k := e.kind
	if err := k.TagImage(ctx, SampleAppImage, examplesSampleAppImage); err != nil {
		return err
	}
	for _, dir := range []string{"prometheus", "kafka", "adapter"} {
		path := filepath.Join(e.opts.RepoRoot, "test", "kind", dir)
		if err := cluster.ApplyKustomize(ctx, k, path); err != nil {
			return err
		}
		e.progress("applied %s", path)
	}
	if err := e.selfSignedCert(ctx); err != nil {
		return err
	}
	if !k.Created() {
		// The tag did not change, so the pods still run the image loaded
		// by an earlier run.
		if err := restartDeployment(ctx, k.Client(), adapterNamespace, adapterDeployment); err != nil {
			return err
		}
	}
	if err := e.deleteManaged(ctx); err != nil {
		return err
	}

	client := k.Client()
	timeout := e.opts.ReadyTimeout
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return waitDeployment(gctx, client, prometheusNamespace, prometheusName, timeout) })
	g.Go(func() error { return waitDeployment(gctx, client, kafkaNamespace, kafkaName, timeout) })
	g.Go(func() error { return waitJob(gctx, client, kafkaNamespace, topicJob, timeout) })
	g.Go(func() error { return e.waitAdapter(gctx) })
	if err := g.Wait(); err != nil {
		return err
	}
	e.progress("Prometheus, Kafka (topic demo.orders) and the adapter are ready")
	return nil
}

// selfSignedCert runs manifests/hack/self-signed-cert.sh against the
// cluster, the README's "Option B": it creates the serving certificate's
// Secret and patches the CA into the APIServices' caBundle.
func (e *Env) selfSignedCert(ctx context.Context) error {
	script := filepath.Join(e.opts.RepoRoot, "manifests", "hack", "self-signed-cert.sh")
	cmd := exec.CommandContext(ctx, "bash", script, "--dir", filepath.Join(e.opts.WorkDir, "pki"))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.kind.Kubeconfig(), "KUBECTL="+cluster.KubectlPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", script, err, out)
	}
	e.progress("serving certificate and caBundle from %s", script)
	return nil
}

// waitAdapter waits for the adapter's rollout, its APIServices, and
// discovery through the aggregator (Available=True precedes the proxy's
// own view of it by a moment).
func (e *Env) waitAdapter(ctx context.Context) error {
	k, timeout := e.kind, e.opts.ReadyTimeout
	if err := waitDeployment(ctx, k.Client(), adapterNamespace, adapterDeployment, timeout); err != nil {
		return err
	}
	for _, name := range apiServices {
		if err := cluster.WaitAPIServiceAvailable(ctx, k, name, timeout); err != nil {
			return err
		}
	}
	for _, gv := range []string{"custom.metrics.k8s.io/v1beta1", "custom.metrics.k8s.io/v1beta2", "external.metrics.k8s.io/v1beta1", "explain.hpa-signals.io/v1alpha1"} {
		err := cluster.WaitFor(ctx, "discovery of "+gv+" through the aggregator", timeout, func(ctx context.Context) (bool, error) {
			_, err := k.Client().Discovery().RESTClient().Get().AbsPath("/apis/" + gv).DoRaw(ctx)
			return err == nil, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// restartDeployment rolls a Deployment's pods, like kubectl rollout restart.
func restartDeployment(ctx context.Context, client kubernetes.Interface, namespace, name string) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
	_, err := client.AppsV1().Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("restart Deployment %s/%s: %w", namespace, name, err)
	}
	return nil
}

// waitDeployment waits until a Deployment's current spec is rolled out:
// every replica updated and available, and no old replica left.
func waitDeployment(ctx context.Context, client kubernetes.Interface, namespace, name string, timeout time.Duration) error {
	what := fmt.Sprintf("Deployment %s/%s rolled out", namespace, name)
	return cluster.WaitFor(ctx, what, timeout, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.AvailableReplicas != want || s.Replicas != want {
			return false, fmt.Errorf("%d of %d replicas updated, %d available, %d in total", s.UpdatedReplicas, want, s.AvailableReplicas, s.Replicas)
		}
		return true, nil
	})
}

// waitJob waits until a Job completes; a failed Job ends the wait at once
// with the tail of its pods' logs.
func waitJob(ctx context.Context, client kubernetes.Interface, namespace, name string, timeout time.Duration) error {
	return cluster.WaitFor(ctx, fmt.Sprintf("Job %s/%s complete", namespace, name), timeout, func(ctx context.Context) (bool, error) {
		j, err := client.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, cluster.StopWaiting(fmt.Errorf("job %s/%s failed: %s: %s; logs:\n%s",
					namespace, name, c.Reason, c.Message, jobLogs(ctx, client, namespace, name)))
			}
		}
		return false, fmt.Errorf("job %s/%s: %d active, %d failed", namespace, name, j.Status.Active, j.Status.Failed)
	})
}

// jobLogs returns the last lines of every pod of a Job, for error messages.
func jobLogs(ctx context.Context, client kubernetes.Interface, namespace, job string) string {
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
	if err != nil {
		return fmt.Sprintf("(list pods: %v)", err)
	}
	tail := int64(20)
	var out string
	for _, p := range pods.Items {
		b, err := client.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
		if err != nil {
			b = []byte(err.Error())
		}
		out += fmt.Sprintf("--- pod %s\n%s", p.Name, b)
	}
	return out
}

// deleteManaged deletes the load Deployments, their Services and the
// produce Jobs this package made, in every namespace, so a reused cluster
// starts without the last run's load.
func (e *Env) deleteManaged(ctx context.Context) error {
	client := e.kind.Client()
	sel := metav1.ListOptions{LabelSelector: managedBySelector}
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	deps, err := client.AppsV1().Deployments("").List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list load Deployments: %w", err)
	}
	for _, d := range deps.Items {
		if err := client.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete load Deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	svcs, err := client.CoreV1().Services("").List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list load Services: %w", err)
	}
	for _, s := range svcs.Items {
		if err := client.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete load Service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	jobs, err := client.BatchV1().Jobs("").List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list produce Jobs: %w", err)
	}
	for _, j := range jobs.Items {
		if err := client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete produce Job %s/%s: %w", j.Namespace, j.Name, err)
		}
	}
	return nil
}
