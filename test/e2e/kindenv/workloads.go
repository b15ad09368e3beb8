package kindenv

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// Labels on everything SetLoad and ProduceBurst create, so Start and Stop
// find what a previous run left.
const (
	managedByLabel    = "app.kubernetes.io/managed-by"
	managedByValue    = "hpa-signals-kindenv"
	managedBySelector = managedByLabel + "=" + managedByValue
	loadTargetLabel   = "hpa-signals.e2e/load-target"
)

// SetLoad makes the Deployment load-<deployment> in namespace send
// totalRPS requests per second to /work of deployment's pods through a
// Service selecting them (sample-app --mode=load; the Service spreads the
// requests over the ready pods, and the generator reconnects every second
// so pods added by a scale-out get their share), replacing the previous
// load, and returns once the new load runs. The Service is the first one
// (by name) selecting the Deployment's pods, as manifests/examples has for
// every HTTP workload; if there is none, SetLoad creates
// <deployment>-load-target. totalRPS <= 0 deletes the load and returns
// once its pod is gone.
func (e *Env) SetLoad(ctx context.Context, namespace, deployment string, totalRPS float64, load loadgen.Shape) error {
	client := e.kind.Client()
	name := "load-" + deployment
	if totalRPS <= 0 {
		if err := deleteAndWait(ctx, client, namespace, name, e.opts.ReadyTimeout); err != nil {
			return fmt.Errorf("stop load on %s/%s: %w", namespace, deployment, err)
		}
		return nil
	}
	target, err := loadTarget(ctx, client, namespace, deployment)
	if err != nil {
		return fmt.Errorf("set load on %s/%s: %w", namespace, deployment, err)
	}
	if err := applyDeployment(ctx, client, loadDeployment(namespace, deployment, target, totalRPS, load)); err != nil {
		return fmt.Errorf("set load on %s/%s: %w", namespace, deployment, err)
	}
	if err := waitDeployment(ctx, client, namespace, name, e.opts.ReadyTimeout); err != nil {
		return fmt.Errorf("set load on %s/%s: %w", namespace, deployment, err)
	}
	return nil
}

// loadTarget returns the base URL of a Service selecting deployment's
// pods, creating one if none does.
func loadTarget(ctx context.Context, client kubernetes.Interface, namespace, deployment string) (string, error) {
	d, err := client.AppsV1().Deployments(namespace).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("find the load's target: %w", err)
	}
	svcs, err := client.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("find the load's target: %w", err)
	}
	sort.Slice(svcs.Items, func(i, j int) bool { return svcs.Items[i].Name < svcs.Items[j].Name })
	podLabels := labels.Set(d.Spec.Template.Labels)
	for _, s := range svcs.Items {
		if len(s.Spec.Selector) > 0 && len(s.Spec.Ports) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			return serviceURL(s.Name, namespace, s.Spec.Ports[0].Port), nil
		}
	}
	svc, err := targetService(d)
	if err != nil {
		return "", fmt.Errorf("find the load's target: no Service selects the pods of %s/%s, and %w", namespace, deployment, err)
	}
	if _, err := client.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create Service %s/%s for the load: %w", namespace, svc.Name, err)
	}
	return serviceURL(svc.Name, namespace, svc.Spec.Ports[0].Port), nil
}

func serviceURL(name, namespace string, port int32) string {
	return "http://" + name + "." + namespace + ".svc:" + strconv.Itoa(int(port))
}

// targetService is a Service for a Deployment without one: port 80 to its
// first container's first port.
func targetService(d *appsv1.Deployment) (*corev1.Service, error) {
	if len(d.Spec.Template.Spec.Containers) == 0 || len(d.Spec.Template.Spec.Containers[0].Ports) == 0 {
		return nil, errors.New("its first container declares no port to send the load to")
	}
	p := d.Spec.Template.Spec.Containers[0].Ports[0]
	target := intstr.FromInt32(p.ContainerPort)
	if p.Name != "" {
		target = intstr.FromString(p.Name)
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      d.Name + "-load-target",
			Namespace: d.Namespace,
			Labels:    map[string]string{managedByLabel: managedByValue, loadTargetLabel: d.Name},
		},
		Spec: corev1.ServiceSpec{
			Selector: d.Spec.Template.Labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: target}},
		},
	}, nil
}

// loadDeployment is the load generator of one workload: one replica of the
// sample-app in load mode, replaced (Recreate) rather than rolled when the
// rate changes, so two loads never overlap.
func loadDeployment(namespace, deployment, targetURL string, rps float64, load loadgen.Shape) *appsv1.Deployment {
	name := "load-" + deployment
	podLabels := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/component": "load"}
	args := []string{
		"--mode=load",
		"--target-url=" + targetURL,
		"--rps=" + strconv.FormatFloat(rps, 'g', -1, 64),
		"--max-in-flight=1000",
		"--request-timeout=10s",
		"--reconnect-interval=1s",
	}
	if load.Goroutines > 0 {
		args = append(args, "--goroutines="+strconv.Itoa(load.Goroutines), "--hold="+load.Hold.String())
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    map[string]string{managedByLabel: managedByValue, loadTargetLabel: deployment, "app.kubernetes.io/name": name},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: restrictedPod(corev1.Container{
					Name:  "load",
					Image: SampleAppImage,
					Args:  args,
				}, 15),
			},
		},
	}
}

// restrictedPod runs one sample-app container the way the restricted Pod
// Security Standard (namespace demo enforces it) accepts.
func restrictedPod(c corev1.Container, gracePeriodSeconds int64) corev1.PodSpec {
	c.ImagePullPolicy = corev1.PullIfNotPresent
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	c.SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To(gracePeriodSeconds),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{c},
	}
}

// applyDeployment creates d or replaces the spec of the existing one.
func applyDeployment(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment) error {
	deps := client.AppsV1().Deployments(d.Namespace)
	_, err := deps.Create(ctx, d, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create Deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deps.Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Labels, cur.Spec = d.Labels, d.Spec
		_, err = deps.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("update Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

// deleteAndWait deletes a Deployment with its pods (foreground) and waits
// until it is gone, so the load has stopped when it returns.
func deleteAndWait(ctx context.Context, client kubernetes.Interface, namespace, name string, timeout time.Duration) error {
	deps := client.AppsV1().Deployments(namespace)
	fg := metav1.DeletePropagationForeground
	if err := deps.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete Deployment %s/%s: %w", namespace, name, err)
	}
	return cluster.WaitFor(ctx, fmt.Sprintf("Deployment %s/%s and its pods gone", namespace, name), timeout, func(ctx context.Context) (bool, error) {
		_, err := deps.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// ProduceBurst runs sample-app --mode=produce as a Job in namespace kafka
// and returns once it completed, i.e. once the broker acknowledged the n
// records (spread round robin over the topic's partitions). The Job is not
// retried, so a failure never produces twice; its error carries the pod's
// log.
func (e *Env) ProduceBurst(ctx context.Context, topic string, n int) error {
	client := e.kind.Client()
	job, err := client.BatchV1().Jobs(kafkaNamespace).Create(ctx, produceJob(topic, n), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("produce %d messages to %q: create Job: %w", n, topic, err)
	}
	if err := waitJob(ctx, client, kafkaNamespace, job.Name, e.opts.ReadyTimeout); err != nil {
		return fmt.Errorf("produce %d messages to %q: %w", n, topic, err)
	}
	return nil
}

// produceJob is one burst: a Job named produce-<random> that never retries
// and is cleaned up ten minutes after it finished.
func produceJob(topic string, n int) *batchv1.Job {
	l := map[string]string{managedByLabel: managedByValue, "app.kubernetes.io/name": "produce"}
	pod := restrictedPod(corev1.Container{
		Name:  "produce",
		Image: SampleAppImage,
		Args: []string{
			"--mode=produce",
			"--brokers=" + kafkaBrokers,
			"--topic=" + topic,
			"--messages=" + strconv.Itoa(n),
			"--produce-timeout=2m",
		},
	}, 10)
	pod.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "produce-", Namespace: kafkaNamespace, Labels: l},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			ActiveDeadlineSeconds:   ptr.To[int64](180),
			TTLSecondsAfterFinished: ptr.To[int32](600),
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: pod},
		},
	}
}

// StopPrometheus scales Prometheus to 0 and returns once its pod is gone,
// so the adapter's queries fail (its Service has no endpoint).
func (e *Env) StopPrometheus(ctx context.Context) error {
	client := e.kind.Client()
	if err := scale(ctx, client, prometheusNamespace, prometheusName, 0); err != nil {
		return fmt.Errorf("stop Prometheus: %w", err)
	}
	err := cluster.WaitFor(ctx, "Prometheus pods gone", e.opts.ReadyTimeout, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(prometheusNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + prometheusName})
		if err != nil {
			return false, err
		}
		if n := len(pods.Items); n > 0 {
			return false, fmt.Errorf("%d pods left", n)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("stop Prometheus: %w", err)
	}
	return nil
}

// StartPrometheus scales Prometheus back to 1 and returns once it is
// ready behind its Service, with the data it had (its TSDB is on a
// PersistentVolumeClaim).
func (e *Env) StartPrometheus(ctx context.Context) error {
	client := e.kind.Client()
	if err := scale(ctx, client, prometheusNamespace, prometheusName, 1); err != nil {
		return fmt.Errorf("start Prometheus: %w", err)
	}
	if err := waitDeployment(ctx, client, prometheusNamespace, prometheusName, e.opts.ReadyTimeout); err != nil {
		return fmt.Errorf("start Prometheus: %w", err)
	}
	err := cluster.WaitFor(ctx, "a ready endpoint behind Service monitoring/prometheus", e.opts.ReadyTimeout, func(ctx context.Context) (bool, error) {
		slices, err := client.DiscoveryV1().EndpointSlices(prometheusNamespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + prometheusName})
		if err != nil {
			return false, err
		}
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, errors.New("no ready endpoint yet")
	})
	if err != nil {
		return fmt.Errorf("start Prometheus: %w", err)
	}
	return nil
}

func scale(ctx context.Context, client kubernetes.Interface, namespace, name string, replicas int32) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := client.AppsV1().Deployments(namespace).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = client.AppsV1().Deployments(namespace).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	})
}
