package provider

import (
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	cmv1beta1 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta1"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	"k8s.io/metrics/pkg/apis/external_metrics"
	emv1beta1 "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"
)

// The answer to a metric read is a list of values, one per pod or series.
// The API library converts the provider's (internal) list to the
// requested version, a copy of every item, and writes it with
// encoding/json, whose reflection over the items was most of a warm read's
// CPU (README "Performance"). internalListJSON writes the internal list
// straight as the requested version's JSON, appending fields in the order
// and form conversion and encoding/json give them, and leaves every other
// object, and any list with a field it does not write (list metadata, a
// type on an item), to the library. TestInternalListJSONMatchesLibrary
// compares the bytes.

// fastListNegotiator is the library's NegotiatedSerializer, except that
// the encoder it returns for its JSON serializer writes lists of metric
// values itself (internalListEncoder).
type fastListNegotiator struct {
	runtime.NegotiatedSerializer
	json runtime.Serializer
}

func newFastListNegotiator(ns runtime.NegotiatedSerializer) fastListNegotiator {
	n := fastListNegotiator{NegotiatedSerializer: ns}
	for _, m := range ns.SupportedMediaTypes() {
		if m.MediaType == runtime.ContentTypeJSON {
			n.json = m.Serializer
		}
	}
	return n
}

// EncoderForVersion returns the library's converting encoder for gv, which
// for the plain JSON serializer is wrapped in internalListEncoder.
func (n fastListNegotiator) EncoderForVersion(e runtime.Encoder, gv runtime.GroupVersioner) runtime.Encoder {
	converting := n.NegotiatedSerializer.EncoderForVersion(e, gv)
	v, ok := gv.(schema.GroupVersion)
	if e != n.json || !ok {
		return converting
	}
	return internalListEncoder{converting: converting, gv: v}
}

// internalListEncoder writes an internal list of metric values as gv's
// list, the same bytes the converting encoder would write, and hands
// everything else to the converting encoder.
type internalListEncoder struct {
	converting runtime.Encoder
	gv         schema.GroupVersion
}

func (e internalListEncoder) Identifier() runtime.Identifier { return e.converting.Identifier() }

func (e internalListEncoder) Encode(obj runtime.Object, w io.Writer) error {
	bp := listBuffers.Get().(*[]byte)
	defer putListBuffer(bp)
	b, ok := internalListJSON((*bp)[:0], obj, e.gv)
	if !ok {
		return e.converting.Encode(obj, w)
	}
	*bp = b
	_, err := w.Write(b)
	return err
}

// listBuffers holds the buffers lists are written into; one that grew past
// maxPooledBuffer is left to the garbage collector.
var listBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBuffer = 1 << 20

func putListBuffer(bp *[]byte) {
	if cap(*bp) <= maxPooledBuffer {
		listBuffers.Put(bp)
	}
}

// internalListJSON appends obj, an internal list, as JSON of gv's list
// type followed by a newline, as conversion to gv and json.Encoder would
// write it, and reports whether it could.
func internalListJSON(b []byte, obj runtime.Object, gv schema.GroupVersion) ([]byte, bool) {
	switch l := obj.(type) {
	case *custom_metrics.MetricValueList:
		v2 := gv == cmv1beta2.SchemeGroupVersion
		if !v2 && gv != cmv1beta1.SchemeGroupVersion {
			return b, false
		}
		// Static calls, not a function value: ref stays on the stack.
		return appendList(b, gv.WithKind("MetricValueList"), l.ListMeta, l.Items, func(b []byte, v *custom_metrics.MetricValue) ([]byte, bool) {
			ref := corev1.ObjectReference(v.DescribedObject)
			if v2 {
				return appendCustomV1beta2(b, v.TypeMeta, &ref, v.Metric.Name, v.Metric.Selector, v.Timestamp, v.WindowSeconds, &v.Value)
			}
			return appendCustomV1beta1(b, v.TypeMeta, &ref, v.Metric.Name, v.Metric.Selector, v.Timestamp, v.WindowSeconds, &v.Value)
		})
	case *external_metrics.ExternalMetricValueList:
		if gv != emv1beta1.SchemeGroupVersion {
			return b, false
		}
		return appendList(b, gv.WithKind("ExternalMetricValueList"), l.ListMeta, l.Items, func(b []byte, v *external_metrics.ExternalMetricValue) ([]byte, bool) {
			return appendExternal(b, v.TypeMeta, v.MetricName, v.MetricLabels, v.Timestamp, v.WindowSeconds, &v.Value)
		})
	}
	return b, false
}

// appendList writes a list of kind gvk whose items item writes, and
// reports whether it could: not a list with metadata, nor one with an item
// item refuses.
func appendList[T any](b []byte, gvk schema.GroupVersionKind, meta metav1.ListMeta, items []T, item func([]byte, *T) ([]byte, bool)) ([]byte, bool) {
	if meta != (metav1.ListMeta{}) {
		return b, false
	}
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	b = append(b, `{"kind":`...)
	b = appendString(b, kind)
	b = append(b, `,"apiVersion":`...)
	b = appendString(b, apiVersion)
	b = append(b, `,"metadata":{},"items":`...)
	if items == nil {
		return append(b, "null}\n"...), true
	}
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = item(b, &items[i]); !ok {
			return b, false
		}
	}
	return append(b, "]}\n"...), true
}

// appendCustomV1beta2 writes one custom_metrics/v1beta2 MetricValue; it
// refuses an item with a type, as appendCustomV1beta1 and appendExternal
// do, which conversion and encoding/json would write.
func appendCustomV1beta2(b []byte, t metav1.TypeMeta, ref *corev1.ObjectReference, name string, sel *metav1.LabelSelector, ts metav1.Time, window *int64, q *resource.Quantity) ([]byte, bool) {
	if t != (metav1.TypeMeta{}) {
		return b, false
	}
	var ok bool
	b = append(b, `{"describedObject":`...)
	b = appendObjectReference(b, ref)
	b = append(b, `,"metric":{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"selector":`...)
	if b, ok = appendSelector(b, sel); !ok {
		return b, false
	}
	b = append(b, `},"timestamp":`...)
	b = appendTime(b, ts)
	if window != nil {
		b = append(b, `,"windowSeconds":`...)
		b = strconv.AppendInt(b, *window, 10)
	}
	if b, ok = appendQuantity(b, q); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendCustomV1beta1 writes one custom_metrics/v1beta1 MetricValue.
func appendCustomV1beta1(b []byte, t metav1.TypeMeta, ref *corev1.ObjectReference, name string, sel *metav1.LabelSelector, ts metav1.Time, window *int64, q *resource.Quantity) ([]byte, bool) {
	if t != (metav1.TypeMeta{}) {
		return b, false
	}
	var ok bool
	b = append(b, `{"describedObject":`...)
	b = appendObjectReference(b, ref)
	b = append(b, `,"metricName":`...)
	b = appendString(b, name)
	b = append(b, `,"timestamp":`...)
	b = appendTime(b, ts)
	if window != nil {
		b = append(b, `,"window":`...)
		b = strconv.AppendInt(b, *window, 10)
	}
	if b, ok = appendQuantity(b, q); !ok {
		return b, false
	}
	b = append(b, `,"selector":`...)
	if b, ok = appendSelector(b, sel); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendExternal writes one external_metrics/v1beta1 ExternalMetricValue.
func appendExternal(b []byte, t metav1.TypeMeta, name string, labels map[string]string, ts metav1.Time, window *int64, q *resource.Quantity) ([]byte, bool) {
	if t != (metav1.TypeMeta{}) {
		return b, false
	}
	var ok bool
	b = append(b, `{"metricName":`...)
	b = appendString(b, name)
	b = append(b, `,"metricLabels":`...)
	b = appendLabels(b, labels)
	b = append(b, `,"timestamp":`...)
	b = appendTime(b, ts)
	if window != nil {
		b = append(b, `,"window":`...)
		b = strconv.AppendInt(b, *window, 10)
	}
	if b, ok = appendQuantity(b, q); !ok {
		return b, false
	}
	return append(b, '}'), true
}

func appendObjectReference(b []byte, r *corev1.ObjectReference) []byte {
	b = append(b, '{')
	n := len(b)
	field := func(name, v string) {
		if v == "" {
			return
		}
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, name...)
		b = appendString(b, v)
	}
	field(`"kind":`, r.Kind)
	field(`"namespace":`, r.Namespace)
	field(`"name":`, r.Name)
	field(`"uid":`, string(r.UID))
	field(`"apiVersion":`, r.APIVersion)
	field(`"resourceVersion":`, r.ResourceVersion)
	field(`"fieldPath":`, r.FieldPath)
	return append(b, '}')
}

// appendSelector writes a metric selector; one that is set goes through
// encoding/json, as a nested value would.
func appendSelector(b []byte, s *metav1.LabelSelector) ([]byte, bool) {
	if s == nil {
		return append(b, "null"...), true
	}
	j, err := json.Marshal(s)
	if err != nil {
		return b, false
	}
	return append(b, j...), true
}

// appendLabels writes a string map with its keys sorted, as encoding/json
// does.
func appendLabels(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// appendTime writes t as metav1.Time's MarshalJSON does.
func appendTime(b []byte, t metav1.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339)
	return append(b, '"')
}

// appendQuantity writes the "value" field.
func appendQuantity(b []byte, q *resource.Quantity) ([]byte, bool) {
	j, err := q.MarshalJSON()
	if err != nil {
		return b, false
	}
	b = append(b, `,"value":`...)
	return append(b, j...), true
}

// appendString writes s as a JSON string. Names, metric names and label
// values are plain ASCII; anything else goes through encoding/json, so
// escaping (HTML characters included) is exactly its.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // a string always marshals
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
