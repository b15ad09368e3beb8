//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// scaleFromZeroScenario (local stack): a Deployment at 0 replicas whose
// consumer group has never existed, on a topic of its own that has never
// held a record. kafka_consumer_lag_earliest reads the group as one
// without commits (0 while the topic is empty), a burst wakes the
// Deployment and scales it to its maximum, and once the replicas have
// drained and committed the backlog it goes back to 0.
//
// The controller scales a target up from 0 only if it took it there
// itself (its ScaledToZero condition; a target someone else set to 0 has
// autoscaling disabled), as with audit-consumer of demo/hpas. So the
// Deployment starts at 1 replica whose pod cannot be scheduled (a node
// selector no node matches): the HPA takes it to 0 before any consumer
// has run, and only then does the Deployment get a template that runs.
func scaleFromZeroScenario(ctx context.Context, t *testing.T, e env.Env) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("needs the local stack: it creates a topic in the stack's Kafka")
	}
	c := e.Cluster()
	const (
		name      = "wake-consumer"
		group     = "demo.wake" // never used before this scenario
		wakeTopic = "demo.wake" // allowedTopics of the earliest preset: "{namespace}.*"
		burst     = 2400        // ceil(2400/500) = 5 replicas wanted, capped at 4
		perPod    = 500
		maxPods   = 4
	)
	if err := createTopic(ctx, s.KafkaBrokers(), wakeTopic, 4); err != nil {
		t.Fatal(err)
	}
	// 25 messages/s per replica: 4 replicas drain the burst in ~25s.
	createConsumerDeployment(ctx, t, e, name, 1, map[string]string{"e2e.hpa-signals.io/node": "none"},
		"--mode=consumer", "--topic="+wakeTopic, "--group="+group, "--rate=25", "--commit-interval=1s")
	createExternalHPA(ctx, t, e, name, 0, maxPods, "kafka_consumer_lag_earliest", map[string]string{"group": group, "topic": wakeTopic}, perPod)

	// The group has never existed and the topic is empty: lag 0, not 404.
	sel := "group=" + group + ",topic=" + wakeTopic
	v := waitExternalValue(ctx, t, c, "kafka_consumer_lag_earliest", sel, func(v float64) bool { return v == 0 })
	t.Logf("before the burst: kafka_consumer_lag_earliest{%s} = %g", sel, v)
	h := waitHPA(ctx, t, c, name, "scales to 0 on lag 0", scaleTimeout, replicasAtMost(0))
	t.Logf("before the burst: %s", describeHPA(h))
	if condition(h, autoscalingv2.ScaledToZero) != corev1.ConditionTrue {
		t.Errorf("%s at 0 replicas without condition ScaledToZero=True: the controller would not scale it up again", name)
	}
	unpark := []byte(`{"spec":{"template":{"spec":{"nodeSelector":null}}}}`)
	if _, err := c.Client().AppsV1().Deployments(demoNamespace).Patch(ctx, name, types.MergePatchType, unpark, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// The group still does not exist: the ordinary preset (offsetReset
	// latest, no topic allow-list) knows no such group.
	if _, err := rawGet(ctx, c, externalPath("kafka_consumer_lag", sel)); !apierrors.IsNotFound(err) {
		t.Errorf("kafka_consumer_lag{%s} before the burst: %v, want 404 for a group that never existed", sel, err)
	}

	if err := e.ProduceBurst(ctx, wakeTopic, burst); err != nil {
		t.Fatal(err)
	}
	h = waitHPA(ctx, t, c, name, "wakes from zero and scales to its maximum, 4", scaleTimeout, replicasAtLeast(maxPods))
	t.Logf("after the burst: %s", describeHPA(h))

	h = waitHPA(ctx, t, c, name, "back to 0 once drained", 2*scaleTimeout, replicasAtMost(0))
	t.Logf("drained: %s", describeHPA(h))
	// The replicas committed the whole burst: the group now exists, and
	// the lag of the ordinary preset is 0 too.
	waitExternalValue(ctx, t, c, "kafka_consumer_lag", sel, func(v float64) bool { return v == 0 })
}

// shareGroupScenario (local stack): a Deployment of share-group consumers
// (KIP-932) on kafka_share_group_backlog, 1 to 4 replicas at 500 records
// of backlog each. A burst of 2400 records scales it to 4; once the
// replicas have acknowledged them all it is back to 1.
func shareGroupScenario(ctx context.Context, t *testing.T, e env.Env) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("needs the local stack: it creates a topic and sets a group config in the stack's Kafka")
	}
	c := e.Cluster()
	const (
		name      = "share-consumer"
		group     = "demo.workers"
		jobsTopic = "demo.jobs"
		burst     = 2400 // ceil(2400/500) = 5 replicas wanted, capped at 4
		perPod    = 500
		maxPods   = 4
	)
	brokers := s.KafkaBrokers()
	if err := createTopic(ctx, brokers, jobsTopic, 4); err != nil {
		t.Fatal(err)
	}
	// Members start at the earliest record, not at the end: no record
	// produced between the group's creation and its first fetch is skipped.
	if err := setGroupConfig(ctx, brokers, group, "share.auto.offset.reset", "earliest"); err != nil {
		t.Fatal(err)
	}
	// 25 records/s per replica: 4 replicas drain the burst in ~25s.
	createConsumerDeployment(ctx, t, e, name, 1, nil, "--mode=share-consumer", "--topic="+jobsTopic, "--group="+group, "--rate=25", "--commit-interval=1s")
	createExternalHPA(ctx, t, e, name, 1, maxPods, "kafka_share_group_backlog", map[string]string{"group": group, "topic": jobsTopic}, perPod)

	sel := "group=" + group + ",topic=" + jobsTopic
	v := waitExternalValue(ctx, t, c, "kafka_share_group_backlog", sel, func(v float64) bool { return v == 0 })
	t.Logf("before the burst: kafka_share_group_backlog{%s} = %g", sel, v)
	h := waitHPA(ctx, t, c, name, "reports backlog 0 at 1 replica", scaleTimeout, settledAt(1))
	t.Logf("before the burst: %s", describeHPA(h))

	if err := e.ProduceBurst(ctx, jobsTopic, burst); err != nil {
		t.Fatal(err)
	}
	// The backlog's age: its oldest record was produced by the burst.
	age := waitExternalValue(ctx, t, c, "kafka_share_group_backlog_seconds", sel, func(v float64) bool { return v >= 1 && v < scaleTimeout.Seconds() })
	t.Logf("during the burst: kafka_share_group_backlog_seconds{%s} = %g", sel, age)
	h = waitHPA(ctx, t, c, name, "scales to its maximum, 4, for a backlog of 2400", scaleTimeout, replicasAtLeast(maxPods))
	t.Logf("after the burst: %s", describeHPA(h))

	h = waitHPA(ctx, t, c, name, "back to 1 replica once every record is acknowledged", 2*scaleTimeout, settledAt(1))
	t.Logf("drained: %s", describeHPA(h))
	waitExternalValue(ctx, t, c, "kafka_share_group_backlog", sel, func(v float64) bool { return v == 0 })
	waitExternalValue(ctx, t, c, "kafka_share_group_backlog_seconds", sel, func(v float64) bool { return v == 0 })
}

// setGroupConfig sets one config of a group (IncrementalAlterConfigs,
// resource type GROUP), as kafka-configs.sh --entity-type groups does.
func setGroupConfig(ctx context.Context, brokers []string, group, key, value string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	rc.Name, rc.Value = key, kmsg.StringPtr(value)
	r.Configs = append(r.Configs, rc)
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Resources) != 1 {
		err = fmt.Errorf("%d resources in the answer, want 1", len(resp.Resources))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("set %s=%s on group %s: %w", key, value, group, err)
	}
	return nil
}

// createConsumerDeployment creates a Deployment of the sample-app image in
// namespace demo with args (the local stack adds the brokers and the
// listen address) and the pods' nodeSelector (nil: none).
func createConsumerDeployment(ctx context.Context, t *testing.T, e env.Env, name string, replicas int32, nodeSelector map[string]string, args ...string) {
	t.Helper()
	labels := map[string]string{"app.kubernetes.io/name": name}
	yes, no := true, false
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: demoNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// What the restricted Pod Security Standard asks, as in
					// manifests/examples.
					NodeSelector: nodeSelector,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   &yes,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "consumer",
						Image: localstack.SampleAppImage,
						Args:  args,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
	if _, err := e.Cluster().Client().AppsV1().Deployments(demoNamespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createExternalHPA creates an HPA in namespace demo for the Deployment
// name on an external metric with an AverageValue target, with the demo's
// behaviours of seconds: scale up at once, down after 15s.
func createExternalHPA(ctx context.Context, t *testing.T, e env.Env, name string, min, max int32, metric string, selector map[string]string, averageValue int64) {
	t.Helper()
	zero, fifteen := int32(0), int32(15)
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: demoNamespace},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &min,
			MaxReplicas:    max,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ExternalMetricSourceType,
				External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: metric, Selector: &metav1.LabelSelector{MatchLabels: selector}},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(averageValue, resource.DecimalSI)},
				},
			}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: &zero,
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: max, PeriodSeconds: 15}},
				},
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: &fifteen,
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
				},
			},
		},
	}
	if _, err := e.Cluster().Client().AutoscalingV2().HorizontalPodAutoscalers(demoNamespace).Create(ctx, h, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
