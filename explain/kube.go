package explain

import (
	"context"
	"encoding/json"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var apiServicesGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// kubeCluster is the Cluster of a REST config: every request goes to the
// kube-apiserver with the config's credentials.
type kubeCluster struct {
	client  kubernetes.Interface
	dynamic dynamic.Interface
	mapper  meta.RESTMapper
}

var _ Cluster = (*kubeCluster)(nil)

// NewCluster returns the Cluster that reads through the kube-apiserver of
// config, with its credentials; mapper maps kinds to resources (a
// discovery-backed mapper, as kubectl's).
func NewCluster(config *rest.Config, mapper meta.RESTMapper) (Cluster, error) {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return &kubeCluster{client: client, dynamic: dyn, mapper: mapper}, nil
}

func (k *kubeCluster) HPA(ctx context.Context, namespace, name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	return k.client.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (k *kubeCluster) Events(ctx context.Context, namespace, name string) ([]corev1.Event, error) {
	sel := fields.Set{"involvedObject.kind": "HorizontalPodAutoscaler", "involvedObject.name": name}.AsSelector().String()
	list, err := k.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (k *kubeCluster) APIService(ctx context.Context, name string) (*APIService, error) {
	u, err := k.dynamic.Resource(apiServicesGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var svc APIService
	if err := json.Unmarshal(b, &svc); err != nil {
		return nil, fmt.Errorf("decode APIService %s: %w", name, err)
	}
	return &svc, nil
}

func (k *kubeCluster) ScaleSelector(ctx context.Context, namespace string, ref autoscalingv2.CrossVersionObjectReference) (string, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", fmt.Errorf("scale target %s/%s: apiVersion %q: %w", ref.Kind, ref.Name, ref.APIVersion, err)
	}
	mapping, err := k.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, gv.Version)
	if err != nil {
		return "", fmt.Errorf("scale target %s/%s: %w", ref.Kind, ref.Name, err)
	}
	u, err := k.dynamic.Resource(mapping.Resource).Namespace(namespace).Get(ctx, ref.Name, metav1.GetOptions{}, "scale")
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("scale target %s/%s not found in namespace %s", ref.Kind, ref.Name, namespace)
		}
		return "", fmt.Errorf("scale target %s/%s: %w", ref.Kind, ref.Name, err)
	}
	sel, _, err := unstructured.NestedString(u.Object, "status", "selector")
	if err != nil || sel == "" {
		return "", fmt.Errorf("scale target %s/%s: its scale subresource has no selector", ref.Kind, ref.Name)
	}
	return sel, nil
}

func (k *kubeCluster) Resource(apiVersion, kind string) (string, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return "", err
	}
	mapping, err := k.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: kind}, gv.Version)
	if err != nil {
		return "", err
	}
	return mapping.Resource.GroupResource().String(), nil
}

func (k *kubeCluster) Explain(ctx context.Context, namespace string, spec MetricExplanationSpec) ([]Step, error) {
	body, err := json.Marshal(MetricExplanation{TypeMeta: metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: Kind}, Spec: spec})
	if err != nil {
		return nil, err
	}
	out, err := k.client.Discovery().RESTClient().Post().AbsPath(CollectionPath(namespace)).
		SetHeader("Content-Type", "application/json").Body(body).DoRaw(ctx)
	if err != nil {
		// The error alone is the status code's generic text: the body has
		// the adapter's or the aggregator's message.
		var st metav1.Status
		if len(out) > 0 && json.Unmarshal(out, &st) == nil && st.Message != "" {
			return nil, &apierrors.StatusError{ErrStatus: st}
		}
		return nil, err
	}
	var me MetricExplanation
	if err := json.Unmarshal(out, &me); err != nil {
		return nil, fmt.Errorf("decode the adapter's answer: %w", err)
	}
	return me.Status.Steps, nil
}
