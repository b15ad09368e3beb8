package provider

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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

// libraryJSON is the serializer the API library writes JSON with.
func libraryJSON(t *testing.T) runtime.Serializer {
	t.Helper()
	for _, m := range apiserver.Codecs.SupportedMediaTypes() {
		if m.MediaType == runtime.ContentTypeJSON {
			return m.Serializer
		}
	}
	t.Fatal("the library offers no JSON serializer")
	return nil
}

// checkSameJSON encodes obj with fastListSerializer and with the library's
// serializer, and fails unless the bytes are the same and fastListSerializer
// wrote them itself exactly when fast says so.
func checkSameJSON(t *testing.T, name string, obj runtime.Object, fast bool) {
	t.Helper()
	lib := libraryJSON(t)
	var want, got bytes.Buffer
	if err := lib.Encode(obj, &want); err != nil {
		t.Fatalf("%s: the library: %v", name, err)
	}
	if err := (fastListSerializer{lib}).Encode(obj, &got); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: the bytes differ\n got: %s\nwant: %s", name, got.Bytes(), want.Bytes())
	}
	if _, wrote := listJSON(nil, obj); wrote != fast {
		t.Fatalf("%s: listJSON wrote the list itself: %t, want %t", name, wrote, fast)
	}
}

// checkSameConverted encodes the internal obj for gv with the library's
// converting encoder and with fastListNegotiator's, and fails unless the
// bytes are the same and internalListJSON wrote them exactly when fast says
// so.
func checkSameConverted(t *testing.T, name string, obj runtime.Object, gv schema.GroupVersion, fast bool) {
	t.Helper()
	lib := libraryJSON(t)
	var want, got bytes.Buffer
	if err := apiserver.Codecs.EncoderForVersion(lib, gv).Encode(obj, &want); err != nil {
		t.Fatalf("%s: the library: %v", name, err)
	}
	if err := newFastListNegotiator(apiserver.Codecs).EncoderForVersion(fastListSerializer{lib}, gv).Encode(obj, &got); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: the bytes differ\n got: %s\nwant: %s", name, got.Bytes(), want.Bytes())
	}
	if _, wrote := internalListJSON(nil, obj, gv); wrote != fast {
		t.Fatalf("%s: internalListJSON wrote the list itself: %t, want %t", name, wrote, fast)
	}
}

// TestInternalListJSONMatchesLibrary covers what the random lists do not:
// lists without items, list metadata, typed items, a version the list
// does not have, and another type.
func TestInternalListJSONMatchesLibrary(t *testing.T) {
	window := int64(60)
	checkSameConverted(t, "empty custom", &custom_metrics.MetricValueList{}, cmv1beta2.SchemeGroupVersion, true)
	checkSameConverted(t, "empty custom items", &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{}}, cmv1beta1.SchemeGroupVersion, true)
	checkSameConverted(t, "empty external", &external_metrics.ExternalMetricValueList{}, emv1beta1.SchemeGroupVersion, true)
	checkSameConverted(t, "list metadata", &custom_metrics.MetricValueList{ListMeta: metav1.ListMeta{RemainingItemCount: &window}}, cmv1beta2.SchemeGroupVersion, false)
	checkSameConverted(t, "typed item", &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{TypeMeta: metav1.TypeMeta{Kind: "K"}, MetricName: "m"}}}, emv1beta1.SchemeGroupVersion, false)
	checkSameConverted(t, "a status", &metav1.Status{Status: metav1.StatusFailure, Message: "no"}, cmv1beta2.SchemeGroupVersion, false)
	if _, wrote := internalListJSON(nil, &custom_metrics.MetricValueList{}, emv1beta1.SchemeGroupVersion); wrote {
		t.Fatal("internalListJSON wrote a custom metrics list as external metrics")
	}
}

func TestListJSONMatchesLibrary(t *testing.T) {
	ts := metav1.NewTime(time.Date(2026, 12, 2, 20, 13, 30, 123456789, time.FixedZone("x", 3600)))
	window := int64(30)
	selector := &metav1.LabelSelector{
		MatchLabels:      map[string]string{"b": "2", "a": "<1>"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}}},
	}
	pod := corev1.ObjectReference{Kind: "Pod", Namespace: "team-a", Name: "web-0", APIVersion: "/v1"}
	typed := func(kind, version string) metav1.TypeMeta { return metav1.TypeMeta{Kind: kind, APIVersion: version} }

	cases := []struct {
		name string
		obj  runtime.Object
		fast bool
	}{
		{"v1beta2 empty", &cmv1beta2.MetricValueList{TypeMeta: typed("MetricValueList", "custom.metrics.k8s.io/v1beta2")}, true},
		{"v1beta2 untyped", &cmv1beta2.MetricValueList{Items: []cmv1beta2.MetricValue{{}}}, true},
		{"v1beta2 values", &cmv1beta2.MetricValueList{
			TypeMeta: typed("MetricValueList", "custom.metrics.k8s.io/v1beta2"),
			Items: []cmv1beta2.MetricValue{
				{DescribedObject: pod, Metric: cmv1beta2.MetricIdentifier{Name: "http_requests_per_second"}, Timestamp: ts, WindowSeconds: &window, Value: resource.MustParse("1500m")},
				{DescribedObject: corev1.ObjectReference{Kind: "Pod", Name: "a&b", UID: "u-1", ResourceVersion: "7", FieldPath: "spec"}, Metric: cmv1beta2.MetricIdentifier{Name: "x", Selector: selector}, Value: *resource.NewMilliQuantity(-12345, resource.DecimalSI)},
				{Metric: cmv1beta2.MetricIdentifier{Name: "grüße\u2028\"\\\x01\x7f\xff"}, Value: *resource.NewQuantity(1<<40, resource.BinarySI)},
			},
		}, true},
		{"v1beta2 list metadata", &cmv1beta2.MetricValueList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, false},
		{"v1beta2 typed item", &cmv1beta2.MetricValueList{Items: []cmv1beta2.MetricValue{{TypeMeta: typed("MetricValue", "v")}}}, false},
		{"v1beta1 values", &cmv1beta1.MetricValueList{
			TypeMeta: typed("MetricValueList", "custom.metrics.k8s.io/v1beta1"),
			Items: []cmv1beta1.MetricValue{
				{DescribedObject: pod, MetricName: "latency_p99_seconds", Timestamp: ts, WindowSeconds: &window, Value: resource.MustParse("0.25"), Selector: selector},
				{MetricName: "g", Value: resource.MustParse("12e3")},
			},
		}, true},
		{"v1beta1 list metadata", &cmv1beta1.MetricValueList{ListMeta: metav1.ListMeta{Continue: "c"}}, false},
		{"external values", &emv1beta1.ExternalMetricValueList{
			TypeMeta: typed("ExternalMetricValueList", "external.metrics.k8s.io/v1beta1"),
			Items: []emv1beta1.ExternalMetricValue{
				{MetricName: "kafka_consumergroup_lag", MetricLabels: map[string]string{"topic": "orders", "group": "billing", "<": ">"}, Timestamp: ts, WindowSeconds: &window, Value: resource.MustParse("123456789")},
				{MetricName: "empty labels", MetricLabels: map[string]string{}, Value: resource.MustParse("0")},
				{MetricName: "no labels"},
			},
		}, true},
		{"external list metadata", &emv1beta1.ExternalMetricValueList{ListMeta: metav1.ListMeta{RemainingItemCount: &window}}, false},
		{"another type", &metav1.Status{Status: metav1.StatusFailure, Message: "no"}, false},
	}
	for _, c := range cases {
		checkSameJSON(t, c.name, c.obj, c.fast)
	}
}

// TestListJSONMatchesLibraryOnRandomValues compares the two on lists of
// random strings (any bytes, invalid UTF-8 included), quantities, windows
// and times.
func TestListJSONMatchesLibraryOnRandomValues(t *testing.T) {
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
		internal := &custom_metrics.MetricValueList{}
		externalInternal := &external_metrics.ExternalMetricValueList{}
		v2 := &cmv1beta2.MetricValueList{TypeMeta: metav1.TypeMeta{Kind: str(), APIVersion: str()}}
		v1 := &cmv1beta1.MetricValueList{TypeMeta: metav1.TypeMeta{Kind: str(), APIVersion: str()}}
		ex := &emv1beta1.ExternalMetricValueList{TypeMeta: metav1.TypeMeta{Kind: str(), APIVersion: str()}}
		for range r.IntN(5) {
			ref := corev1.ObjectReference{Kind: str(), Namespace: str(), Name: str(), APIVersion: str()}
			v2.Items = append(v2.Items, cmv1beta2.MetricValue{DescribedObject: ref, Metric: cmv1beta2.MetricIdentifier{Name: str()}, Timestamp: stamp(), WindowSeconds: window(), Value: quantity()})
			v1.Items = append(v1.Items, cmv1beta1.MetricValue{DescribedObject: ref, MetricName: str(), Timestamp: stamp(), WindowSeconds: window(), Value: quantity()})
			labels := map[string]string{}
			for range r.IntN(4) {
				labels[str()] = str()
			}
			ex.Items = append(ex.Items, emv1beta1.ExternalMetricValue{MetricName: str(), MetricLabels: labels, Timestamp: stamp(), WindowSeconds: window(), Value: quantity()})
			var sel *metav1.LabelSelector
			if r.IntN(3) == 0 {
				sel = &metav1.LabelSelector{MatchLabels: map[string]string{str(): str()}}
			}
			internal.Items = append(internal.Items, custom_metrics.MetricValue{
				DescribedObject: custom_metrics.ObjectReference{Kind: str(), Namespace: str(), Name: str(), UID: types.UID(str()), APIVersion: str(), ResourceVersion: str(), FieldPath: str()},
				Metric:          custom_metrics.MetricIdentifier{Name: str(), Selector: sel},
				Timestamp:       stamp(), WindowSeconds: window(), Value: quantity(),
			})
			externalInternal.Items = append(externalInternal.Items, external_metrics.ExternalMetricValue{MetricName: str(), MetricLabels: labels, Timestamp: stamp(), WindowSeconds: window(), Value: quantity()})
		}
		checkSameConverted(t, fmt.Sprintf("internal #%d to v1beta1", n), internal, cmv1beta1.SchemeGroupVersion, true)
		checkSameConverted(t, fmt.Sprintf("internal #%d to v1beta2", n), internal, cmv1beta2.SchemeGroupVersion, true)
		checkSameConverted(t, fmt.Sprintf("internal external #%d", n), externalInternal, emv1beta1.SchemeGroupVersion, true)
		checkSameJSON(t, fmt.Sprintf("v1beta2 #%d", n), v2, true)
		checkSameJSON(t, fmt.Sprintf("v1beta1 #%d", n), v1, true)
		checkSameJSON(t, fmt.Sprintf("external #%d", n), ex, true)
	}
}
