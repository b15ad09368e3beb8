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
// The API library writes it with encoding/json, whose reflection over the
// list was most of a warm read's CPU (README "Performance"). listJSON
// writes the three list types by appending fields in the order and form
// encoding/json gives them, and hands every other object, and any list
// with a field it does not write (list metadata, a type on an item), to
// the library's serializer. TestListJSONMatchesLibrary compares the bytes.

// fastListSerializer wraps the library's JSON serializer: Encode writes
// metric value lists itself, everything else goes to the wrapped one.
type fastListSerializer struct {
	runtime.Serializer
}

const fastListIdentifier runtime.Identifier = "hpa-signals-metric-lists-json"

func (s fastListSerializer) Identifier() runtime.Identifier { return fastListIdentifier }

func (s fastListSerializer) Encode(obj runtime.Object, w io.Writer) error {
	bp := listBuffers.Get().(*[]byte)
	defer putListBuffer(bp)
	b, ok := listJSON((*bp)[:0], obj)
	if !ok {
		return s.Serializer.Encode(obj, w)
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

// fastListNegotiator is a NegotiatedSerializer that offers the library's
// media types with the JSON one's plain serializer wrapped in
// fastListSerializer. Conversion to the requested version stays the
// library's.
type fastListNegotiator struct {
	runtime.NegotiatedSerializer
	media []runtime.SerializerInfo
}

func newFastListNegotiator(ns runtime.NegotiatedSerializer) fastListNegotiator {
	media := slices.Clone(ns.SupportedMediaTypes())
	for i := range media {
		if media[i].MediaType == runtime.ContentTypeJSON {
			media[i].Serializer = fastListSerializer{media[i].Serializer}
		}
	}
	return fastListNegotiator{NegotiatedSerializer: ns, media: media}
}

func (n fastListNegotiator) SupportedMediaTypes() []runtime.SerializerInfo { return n.media }

// EncoderForVersion returns the library's converting encoder for gv, which
// for the JSON serializer is wrapped in internalListEncoder: a list of
// metric values is written from the provider's (internal) list straight
// into the requested version, without the copy conversion makes.
func (n fastListNegotiator) EncoderForVersion(e runtime.Encoder, gv runtime.GroupVersioner) runtime.Encoder {
	converting := n.NegotiatedSerializer.EncoderForVersion(e, gv)
	v, ok := gv.(schema.GroupVersion)
	if _, fast := e.(fastListSerializer); !fast || !ok {
		return converting
	}
	return internalListEncoder{converting: converting, gv: v}
}

// internalListEncoder writes an internal list of metric values as gv's
// list, and hands everything else to the converting encoder.
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

// internalListJSON appends obj, an internal list, as JSON of gv's list
// type, as conversion to gv and json.Encoder would write it, and reports
// whether it could.
func internalListJSON(b []byte, obj runtime.Object, gv schema.GroupVersion) ([]byte, bool) {
	var ok bool
	switch l := obj.(type) {
	case *custom_metrics.MetricValueList:
		if l.ListMeta != (metav1.ListMeta{}) || (gv != cmv1beta1.SchemeGroupVersion && gv != cmv1beta2.SchemeGroupVersion) {
			return b, false
		}
		b = appendListStart(b, metav1.TypeMeta{Kind: "MetricValueList", APIVersion: gv.String()})
		if l.Items == nil {
			return append(b, "null}\n"...), true
		}
		b = append(b, '[')
		for i := range l.Items {
			v := &l.Items[i]
			if v.TypeMeta != (metav1.TypeMeta{}) {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			ref := corev1.ObjectReference(v.DescribedObject)
			if gv == cmv1beta2.SchemeGroupVersion {
				b, ok = appendCustomV1beta2(b, &ref, v.Metric.Name, v.Metric.Selector, v.Timestamp, v.WindowSeconds, &v.Value)
			} else {
				b, ok = appendCustomV1beta1(b, &ref, v.Metric.Name, v.Metric.Selector, v.Timestamp, v.WindowSeconds, &v.Value)
			}
			if !ok {
				return b, false
			}
		}
	case *external_metrics.ExternalMetricValueList:
		if l.ListMeta != (metav1.ListMeta{}) || gv != emv1beta1.SchemeGroupVersion {
			return b, false
		}
		b = appendListStart(b, metav1.TypeMeta{Kind: "ExternalMetricValueList", APIVersion: gv.String()})
		if l.Items == nil {
			return append(b, "null}\n"...), true
		}
		b = append(b, '[')
		for i := range l.Items {
			v := &l.Items[i]
			if v.TypeMeta != (metav1.TypeMeta{}) {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendExternal(b, v.MetricName, v.MetricLabels, v.Timestamp, v.WindowSeconds, &v.Value); !ok {
				return b, false
			}
		}
	default:
		return b, false
	}
	return append(b, "]}\n"...), true
}

// listJSON appends obj as JSON followed by a newline, as json.Encoder
// writes it, and reports whether it could.
func listJSON(b []byte, obj runtime.Object) ([]byte, bool) {
	var ok bool
	switch l := obj.(type) {
	case *cmv1beta2.MetricValueList:
		if l.ListMeta != (metav1.ListMeta{}) {
			return b, false
		}
		b = appendListStart(b, l.TypeMeta)
		if l.Items == nil {
			return append(b, "null}\n"...), true
		}
		b = append(b, '[')
		for i := range l.Items {
			v := &l.Items[i]
			if v.TypeMeta != (metav1.TypeMeta{}) {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendCustomV1beta2(b, &v.DescribedObject, v.Metric.Name, v.Metric.Selector, v.Timestamp, v.WindowSeconds, &v.Value); !ok {
				return b, false
			}
		}
	case *cmv1beta1.MetricValueList:
		if l.ListMeta != (metav1.ListMeta{}) {
			return b, false
		}
		b = appendListStart(b, l.TypeMeta)
		if l.Items == nil {
			return append(b, "null}\n"...), true
		}
		b = append(b, '[')
		for i := range l.Items {
			v := &l.Items[i]
			if v.TypeMeta != (metav1.TypeMeta{}) {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendCustomV1beta1(b, &v.DescribedObject, v.MetricName, v.Selector, v.Timestamp, v.WindowSeconds, &v.Value); !ok {
				return b, false
			}
		}
	case *emv1beta1.ExternalMetricValueList:
		if l.ListMeta != (metav1.ListMeta{}) {
			return b, false
		}
		b = appendListStart(b, l.TypeMeta)
		if l.Items == nil {
			return append(b, "null}\n"...), true
		}
		b = append(b, '[')
		for i := range l.Items {
			v := &l.Items[i]
			if v.TypeMeta != (metav1.TypeMeta{}) {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendExternal(b, v.MetricName, v.MetricLabels, v.Timestamp, v.WindowSeconds, &v.Value); !ok {
				return b, false
			}
		}
	default:
		return b, false
	}
	return append(b, "]}\n"...), true
}

// appendCustomV1beta2 writes one custom_metrics/v1beta2 MetricValue.
func appendCustomV1beta2(b []byte, ref *corev1.ObjectReference, name string, sel *metav1.LabelSelector, ts metav1.Time, window *int64, q *resource.Quantity) ([]byte, bool) {
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
func appendCustomV1beta1(b []byte, ref *corev1.ObjectReference, name string, sel *metav1.LabelSelector, ts metav1.Time, window *int64, q *resource.Quantity) ([]byte, bool) {
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
func appendExternal(b []byte, name string, labels map[string]string, ts metav1.Time, window *int64, q *resource.Quantity) ([]byte, bool) {
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

// appendListStart writes everything before the items: the type, and the
// list metadata, which the caller has checked is empty.
func appendListStart(b []byte, t metav1.TypeMeta) []byte {
	b = append(b, '{')
	if t.Kind != "" {
		b = append(b, `"kind":`...)
		b = appendString(b, t.Kind)
		b = append(b, ',')
	}
	if t.APIVersion != "" {
		b = append(b, `"apiVersion":`...)
		b = appendString(b, t.APIVersion)
		b = append(b, ',')
	}
	return append(b, `"metadata":{},"items":`...)
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
