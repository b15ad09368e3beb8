package provider

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	cmv1beta1 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta1"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	"k8s.io/metrics/pkg/apis/external_metrics"
	emv1beta1 "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver"
)

// checkSameConverted encodes the internal obj for gv as the library does
// (its JSON serializer behind its converting encoder) and with
// fastListNegotiator, and fails unless the bytes are the same and
// internalListJSON wrote them itself exactly when fast says so.
func checkSameConverted(t *testing.T, name string, obj runtime.Object, gv schema.GroupVersion, fast bool) {
	t.Helper()
	n := newFastListNegotiator(apiserver.Codecs)
	if n.json == nil {
		t.Fatal("the library offers no JSON serializer")
	}
	var want, got bytes.Buffer
	if err := apiserver.Codecs.EncoderForVersion(n.json, gv).Encode(obj, &want); err != nil {
		t.Fatalf("%s: the library: %v", name, err)
	}
	if err := n.EncoderForVersion(n.json, gv).Encode(obj, &got); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: the bytes differ\n got: %s\nwant: %s", name, got.Bytes(), want.Bytes())
	}
	if _, wrote := internalListJSON(nil, obj, gv); wrote != fast {
		t.Fatalf("%s: internalListJSON wrote the list itself: %t, want %t", name, wrote, fast)
	}
}

// customVersions are the versions an internal custom metrics list is
// written as.
var customVersions = []schema.GroupVersion{cmv1beta1.SchemeGroupVersion, cmv1beta2.SchemeGroupVersion}

// TestInternalListJSONMatchesLibrary covers what the random lists do not:
// characters that need escaping, selectors, quantity forms, lists without
// items, and the lists and objects left to the library.
func TestInternalListJSONMatchesLibrary(t *testing.T) {
	ts := metav1.NewTime(time.Date(2026, 12, 2, 20, 13, 30, 123456789, time.FixedZone("x", 3600)))
	window := int64(30)
	selector := &metav1.LabelSelector{
		MatchLabels:      map[string]string{"b": "2", "a": "<1>"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}}},
	}
	custom := &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{
		{DescribedObject: custom_metrics.ObjectReference{Kind: "Pod", Namespace: "team-a", Name: "web-0", APIVersion: "/v1"}, Metric: custom_metrics.MetricIdentifier{Name: "http_requests_per_second"}, Timestamp: ts, WindowSeconds: &window, Value: resource.MustParse("1500m")},
		{DescribedObject: custom_metrics.ObjectReference{Kind: "Pod", Name: "a&b", UID: "u-1", ResourceVersion: "7", FieldPath: "spec"}, Metric: custom_metrics.MetricIdentifier{Name: "x", Selector: selector}, Value: *resource.NewMilliQuantity(-12345, resource.DecimalSI)},
		{Metric: custom_metrics.MetricIdentifier{Name: "grüße\u2028\"\\\x01\x7f\xff"}, Value: *resource.NewQuantity(1<<40, resource.BinarySI)},
		{Metric: custom_metrics.MetricIdentifier{Name: "g"}, Value: resource.MustParse("12e3")},
	}}
	for _, gv := range customVersions {
		checkSameConverted(t, "custom values as "+gv.Version, custom, gv, true)
		checkSameConverted(t, "custom without items as "+gv.Version, &custom_metrics.MetricValueList{}, gv, true)
		checkSameConverted(t, "custom empty as "+gv.Version, &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{}}, gv, true)
	}
	external := &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{
		{MetricName: "kafka_consumergroup_lag", MetricLabels: map[string]string{"topic": "orders", "group": "billing", "<": ">"}, Timestamp: ts, WindowSeconds: &window, Value: resource.MustParse("123456789")},
		{MetricName: "empty labels", MetricLabels: map[string]string{}, Value: resource.MustParse("0")},
		{MetricName: "no labels"},
	}}
	checkSameConverted(t, "external values", external, emv1beta1.SchemeGroupVersion, true)
	checkSameConverted(t, "external without items", &external_metrics.ExternalMetricValueList{}, emv1beta1.SchemeGroupVersion, true)

	checkSameConverted(t, "list metadata", &custom_metrics.MetricValueList{ListMeta: metav1.ListMeta{RemainingItemCount: &window}}, cmv1beta2.SchemeGroupVersion, false)
	for _, gv := range customVersions {
		checkSameConverted(t, "typed custom item as "+gv.Version, &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{{TypeMeta: metav1.TypeMeta{Kind: "K"}}}}, gv, false)
	}
	checkSameConverted(t, "typed external item", &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{TypeMeta: metav1.TypeMeta{Kind: "K"}, MetricName: "m"}}}, emv1beta1.SchemeGroupVersion, false)
	checkSameConverted(t, "a status", &metav1.Status{Status: metav1.StatusFailure, Message: "no"}, cmv1beta2.SchemeGroupVersion, false)
	if _, wrote := internalListJSON(nil, &custom_metrics.MetricValueList{}, emv1beta1.SchemeGroupVersion); wrote {
		t.Fatal("internalListJSON wrote a custom metrics list as external metrics")
	}
}

// TestInternalListJSONMatchesLibraryOnRandomValues compares the two on
// lists of random strings (any bytes, invalid UTF-8 included), quantities,
// windows, times and selectors.
func TestInternalListJSONMatchesLibraryOnRandomValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, r.IntN(12))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = byte('a' + r.IntN(26))
			}
		}
		return string(b)
	}
	formats := []resource.Format{resource.DecimalSI, resource.BinarySI, resource.DecimalExponent}
	quantity := func() resource.Quantity {
		q := resource.NewScaledQuantity(r.Int64N(1<<50)-1<<49, resource.Scale(r.IntN(19)-9))
		q.Format = formats[r.IntN(len(formats))]
		if r.IntN(2) == 0 {
			return resource.MustParse(q.String()) // a parsed one, as a source's value is
		}
		return *q
	}
	window := func() *int64 {
		if r.IntN(2) == 0 {
			return nil
		}
		w := r.Int64N(1 << 40)
		return &w
	}
	stamp := func() metav1.Time {
		if r.IntN(5) == 0 {
			return metav1.Time{}
		}
		return metav1.NewTime(time.Unix(r.Int64N(1<<33), r.Int64N(1e9)))
	}
	for n := range 500 {
		custom := &custom_metrics.MetricValueList{}
		external := &external_metrics.ExternalMetricValueList{}
		for range r.IntN(5) {
			var sel *metav1.LabelSelector
			if r.IntN(3) == 0 {
				sel = &metav1.LabelSelector{MatchLabels: map[string]string{str(): str()}}
			}
			custom.Items = append(custom.Items, custom_metrics.MetricValue{
				DescribedObject: custom_metrics.ObjectReference{Kind: str(), Namespace: str(), Name: str(), UID: types.UID(str()), APIVersion: str(), ResourceVersion: str(), FieldPath: str()},
				Metric:          custom_metrics.MetricIdentifier{Name: str(), Selector: sel},
				Timestamp:       stamp(), WindowSeconds: window(), Value: quantity(),
			})
			labels := map[string]string{}
			for range r.IntN(4) {
				labels[str()] = str()
			}
			external.Items = append(external.Items, external_metrics.ExternalMetricValue{MetricName: str(), MetricLabels: labels, Timestamp: stamp(), WindowSeconds: window(), Value: quantity()})
		}
		for _, gv := range customVersions {
			checkSameConverted(t, fmt.Sprintf("custom #%d as %s", n, gv.Version), custom, gv, true)
		}
		checkSameConverted(t, fmt.Sprintf("external #%d", n), external, emv1beta1.SchemeGroupVersion, true)
	}
}
