package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// workloadKinds are the kinds whose spec.selector selects the pods an HPA
// scales, when a manifest declares one as an HPA's scale target.
var workloadKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "ReplicaSet": true}

// Manifest is what ReadManifest finds in a manifest: its HPAs, and the pod
// selectors of the workloads it declares, by "Kind/name".
type Manifest struct {
	HPAs      []*autoscalingv2.HorizontalPodAutoscaler
	Selectors map[string]string
}

// ReadManifest reads the autoscaling/v2 HPAs of a manifest (YAML or JSON,
// any number of documents, Lists included) and the selectors of the
// Deployments, StatefulSets and ReplicaSets beside them. An HPA of another
// API version, or with fields autoscaling/v2 does not have, is an error
// naming it.
func ReadManifest(r io.Reader) (*Manifest, error) {
	m := &Manifest{Selectors: map[string]string{}}
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		if err := m.add(raw, fmt.Sprintf("document %d", doc)); err != nil {
			return nil, err
		}
	}
	if len(m.HPAs) == 0 {
		return nil, errors.New("the manifest holds no HorizontalPodAutoscaler")
	}
	return m, nil
}

func (m *Manifest) add(raw json.RawMessage, where string) error {
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct{ Name string } `json:"metadata"`
		Items           []json.RawMessage     `json:"items"`
		Spec            struct {
			Selector *metav1.LabelSelector `json:"selector"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	switch {
	case head.Kind == "List" || len(head.Items) > 0 && head.Kind != "HorizontalPodAutoscaler":
		for i, item := range head.Items {
			if err := m.add(item, fmt.Sprintf("%s, item %d", where, i+1)); err != nil {
				return err
			}
		}
	case head.Kind == "HorizontalPodAutoscaler":
		if head.APIVersion != "autoscaling/v2" {
			return fmt.Errorf("%s: HorizontalPodAutoscaler %q is %s; explain reads autoscaling/v2 (kubectl convert, or rewrite its metrics in the v2 form)", where, head.Metadata.Name, head.APIVersion)
		}
		var h autoscalingv2.HorizontalPodAutoscaler
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			return fmt.Errorf("%s: HorizontalPodAutoscaler %q: %w", where, head.Metadata.Name, err)
		}
		m.HPAs = append(m.HPAs, &h)
	case workloadKinds[head.Kind] && head.Spec.Selector != nil:
		sel, err := metav1.LabelSelectorAsSelector(head.Spec.Selector)
		if err != nil {
			return fmt.Errorf("%s: %s %q: spec.selector: %w", where, head.Kind, head.Metadata.Name, err)
		}
		m.Selectors[head.Kind+"/"+head.Metadata.Name] = sel.String()
	}
	return nil
}
