package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Snapshot is one frame of the live view: what every watched HPA and the
// adapter looked like at Time.
type Snapshot struct {
	Time time.Time
	// Step is the story step running ("QPS wave: 150 req/s"), with its
	// expectation; empty outside the story.
	Step, Expect string
	HPAs         []HPAView
	Adapter      AdapterView
	// Errors are reads that failed this round (the rest of the frame is
	// still shown).
	Errors []string
	// Hint is printed under the frame (how to poke the cluster); may be
	// empty.
	Hint string
}

// HPAView is what the view shows of one HorizontalPodAutoscaler.
type HPAView struct {
	Namespace, Name string
	// Target is the scale target, "Deployment/sample-app".
	Target                           string
	Metrics                          []MetricView
	MinReplicas, MaxReplicas         int32
	CurrentReplicas, DesiredReplicas int32
	// LastScaleTime is status.lastScaleTime; zero when it never scaled.
	LastScaleTime time.Time
	// LastScaleEvent is the message of the newest SuccessfulRescale event
	// ("New size: 4; reason: ..."); empty when there is none (events
	// expire after an hour).
	LastScaleEvent string
	// Problem is a condition that stops the HPA from scaling on its
	// metrics ("ScalingActive=False FailedGetExternalMetric: ..."), or "".
	Problem string
}

// MetricView is one entry of spec.metrics with its current value.
type MetricView struct {
	// Type is Pods, Object, External, Resource or ContainerResource.
	Type string
	// Name is the metric name; for Resource metrics the resource ("cpu").
	Name string
	// TargetType is Value, AverageValue or Utilization.
	TargetType string
	// Target is the target value (percent for Utilization).
	Target float64
	// Current is nil when the HPA reports no value for the metric: it
	// renders as <unknown>, as in kubectl get hpa.
	Current *float64
	// AtZero marks an average over a workload scaled to zero: there is no
	// per-pod value, and it renders as "-".
	AtZero bool
}

// Key names an HPA in the timeline and in story goals.
func (h HPAView) Key() string { return h.Namespace + "/" + h.Name }

// WatcherOptions configure NewWatcher.
type WatcherOptions struct {
	// Client reads HPAs and events. Required.
	Client kubernetes.Interface
	// Namespaces whose HPAs are shown. Required.
	Namespaces []string
	// MetricsURL is the adapter's /metrics endpoint; if empty, the adapter
	// line says so and no scrape happens.
	MetricsURL string
	// HTTPClient scrapes MetricsURL (TLS and credentials are its business).
	// If nil, http.DefaultClient is used.
	HTTPClient *http.Client
	// Interval between frames in Run. If zero, 2s.
	Interval time.Duration
	// Clock stamps frames and rates. If nil, the real clock.
	Clock clock.WithTicker
}

// Watcher reads the watched HPAs and the adapter's figures. Poll and Latest
// are safe for concurrent use.
type Watcher struct {
	opts    WatcherOptions
	scraper *scraper

	mu     sync.Mutex
	latest Snapshot
	ok     bool
}

// NewWatcher returns a Watcher; it does not read anything yet.
func NewWatcher(opts WatcherOptions) (*Watcher, error) {
	if opts.Client == nil || len(opts.Namespaces) == 0 {
		return nil, errors.New("new watcher: a client and at least one namespace are required")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Interval == 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Watcher{opts: opts, scraper: newScraper(opts.MetricsURL, opts.HTTPClient)}, nil
}

// Latest returns the last frame Poll built, and false before the first.
func (w *Watcher) Latest() (Snapshot, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest, w.ok
}

// Run polls every Interval until ctx is done, handing each frame to show
// (from this goroutine only).
func (w *Watcher) Run(ctx context.Context, show func(Snapshot)) {
	ticker := w.opts.Clock.NewTicker(w.opts.Interval)
	defer ticker.Stop()
	for {
		show(w.Poll(ctx))
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// Poll reads every watched HPA, its last rescale event and the adapter's
// metrics once. Failed reads land in Snapshot.Errors.
func (w *Watcher) Poll(ctx context.Context) Snapshot {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s := Snapshot{Time: w.opts.Clock.Now()}
	for _, ns := range w.opts.Namespaces {
		hpas, err := w.opts.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			s.Errors = append(s.Errors, fmt.Sprintf("list HPAs in %s: %v", ns, err))
			continue
		}
		events, err := lastRescales(ctx, w.opts.Client, ns)
		if err != nil {
			s.Errors = append(s.Errors, fmt.Sprintf("list events in %s: %v", ns, err))
		}
		for i := range hpas.Items {
			v := hpaView(&hpas.Items[i])
			v.LastScaleEvent = events[v.Name]
			s.HPAs = append(s.HPAs, v)
		}
	}
	sort.Slice(s.HPAs, func(i, j int) bool { return s.HPAs[i].Key() < s.HPAs[j].Key() })
	s.Adapter = w.scraper.scrape(ctx, s.Time)

	w.mu.Lock()
	w.latest, w.ok = s, true
	w.mu.Unlock()
	return s
}

// lastRescales returns, per HPA name, the message of its newest
// SuccessfulRescale event in ns. The field selector narrows the list on a
// real API server; the checks below keep it right where it is ignored.
func lastRescales(ctx context.Context, client kubernetes.Interface, ns string) (map[string]string, error) {
	sel := fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", "HorizontalPodAutoscaler"),
		fields.OneTermEqualSelector("reason", "SuccessfulRescale"),
	).String()
	list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	newest := map[string]time.Time{}
	msgs := map[string]string{}
	for i := range list.Items {
		ev := &list.Items[i]
		if ev.InvolvedObject.Kind != "HorizontalPodAutoscaler" || ev.Reason != "SuccessfulRescale" {
			continue
		}
		name, at := ev.InvolvedObject.Name, eventTime(ev)
		if t, seen := newest[name]; !seen || at.After(t) {
			newest[name], msgs[name] = at, ev.Message
		}
	}
	return msgs, nil
}

// eventTime is when an event last happened, whichever API wrote it.
func eventTime(ev *corev1.Event) time.Time {
	t := ev.LastTimestamp.Time
	if ev.Series != nil && ev.Series.LastObservedTime.After(t) {
		t = ev.Series.LastObservedTime.Time
	}
	if ev.EventTime.After(t) {
		t = ev.EventTime.Time
	}
	if t.IsZero() {
		t = ev.FirstTimestamp.Time
	}
	return t
}

// hpaView extracts what the view shows from an HPA.
func hpaView(h *autoscalingv2.HorizontalPodAutoscaler) HPAView {
	v := HPAView{
		Namespace:       h.Namespace,
		Name:            h.Name,
		Target:          h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name,
		MaxReplicas:     h.Spec.MaxReplicas,
		CurrentReplicas: h.Status.CurrentReplicas,
		DesiredReplicas: h.Status.DesiredReplicas,
	}
	v.MinReplicas = 1
	if h.Spec.MinReplicas != nil {
		v.MinReplicas = *h.Spec.MinReplicas
	}
	if h.Status.LastScaleTime != nil {
		v.LastScaleTime = h.Status.LastScaleTime.Time
	}
	for i, spec := range h.Spec.Metrics {
		mv := metricView(spec, findStatus(h.Status.CurrentMetrics, i, spec))
		// At zero replicas the controller reports an average over zero
		// pods (the minimum int64 in milli-units): no value to show.
		if v.CurrentReplicas == 0 && mv.TargetType == string(autoscalingv2.AverageValueMetricType) && mv.Current != nil && *mv.Current < 0 {
			mv.Current, mv.AtZero = nil, true
		}
		v.Metrics = append(v.Metrics, mv)
	}
	for _, c := range h.Status.Conditions {
		if (c.Type == autoscalingv2.ScalingActive || c.Type == autoscalingv2.AbleToScale) && c.Status == corev1.ConditionFalse {
			v.Problem = fmt.Sprintf("%s=False %s: %s", c.Type, c.Reason, c.Message)
			break
		}
	}
	return v
}

// metricID is what identifies a metric in spec and status alike.
type metricID struct{ typ, name, object string }

func specID(m autoscalingv2.MetricSpec) metricID {
	switch {
	case m.Pods != nil:
		return metricID{string(m.Type), m.Pods.Metric.Name, ""}
	case m.Object != nil:
		return metricID{string(m.Type), m.Object.Metric.Name, m.Object.DescribedObject.Kind + "/" + m.Object.DescribedObject.Name}
	case m.External != nil:
		return metricID{string(m.Type), m.External.Metric.Name, ""}
	case m.Resource != nil:
		return metricID{string(m.Type), string(m.Resource.Name), ""}
	case m.ContainerResource != nil:
		return metricID{string(m.Type), string(m.ContainerResource.Name), m.ContainerResource.Container}
	}
	return metricID{typ: string(m.Type)}
}

func statusID(m autoscalingv2.MetricStatus) metricID {
	switch {
	case m.Pods != nil:
		return metricID{string(m.Type), m.Pods.Metric.Name, ""}
	case m.Object != nil:
		return metricID{string(m.Type), m.Object.Metric.Name, m.Object.DescribedObject.Kind + "/" + m.Object.DescribedObject.Name}
	case m.External != nil:
		return metricID{string(m.Type), m.External.Metric.Name, ""}
	case m.Resource != nil:
		return metricID{string(m.Type), string(m.Resource.Name), ""}
	case m.ContainerResource != nil:
		return metricID{string(m.Type), string(m.ContainerResource.Name), m.ContainerResource.Container}
	}
	return metricID{typ: string(m.Type)}
}

// findStatus returns the status of spec metric i. The controller writes
// statuses in spec order, leaving a zero entry for a metric it could not
// read, so the same index is tried first; a search covers other writers.
func findStatus(statuses []autoscalingv2.MetricStatus, i int, spec autoscalingv2.MetricSpec) *autoscalingv2.MetricStatus {
	id := specID(spec)
	if i < len(statuses) && statusID(statuses[i]) == id {
		return &statuses[i]
	}
	for j := range statuses {
		if statusID(statuses[j]) == id {
			return &statuses[j]
		}
	}
	return nil
}

// metricView pairs a spec metric with its status (nil: not reported).
func metricView(spec autoscalingv2.MetricSpec, status *autoscalingv2.MetricStatus) MetricView {
	id := specID(spec)
	mv := MetricView{Type: id.typ, Name: id.name}
	var target autoscalingv2.MetricTarget
	var current *autoscalingv2.MetricValueStatus
	switch {
	case spec.Pods != nil:
		target = spec.Pods.Target
		if status != nil {
			current = &status.Pods.Current
		}
	case spec.Object != nil:
		target = spec.Object.Target
		if status != nil {
			current = &status.Object.Current
		}
	case spec.External != nil:
		target = spec.External.Target
		if status != nil {
			current = &status.External.Current
		}
	case spec.Resource != nil:
		target = spec.Resource.Target
		if status != nil {
			current = &status.Resource.Current
		}
	case spec.ContainerResource != nil:
		target = spec.ContainerResource.Target
		mv.Name = spec.ContainerResource.Container + "/" + mv.Name
		if status != nil {
			current = &status.ContainerResource.Current
		}
	}
	mv.TargetType = string(target.Type)
	switch target.Type {
	case autoscalingv2.ValueMetricType:
		mv.Target = quantity(target.Value)
		if current != nil && current.Value != nil {
			mv.Current = ptrTo(quantity(current.Value))
		}
	case autoscalingv2.AverageValueMetricType:
		mv.Target = quantity(target.AverageValue)
		if current != nil && current.AverageValue != nil {
			mv.Current = ptrTo(quantity(current.AverageValue))
		}
	case autoscalingv2.UtilizationMetricType:
		if target.AverageUtilization != nil {
			mv.Target = float64(*target.AverageUtilization)
		}
		if current != nil && current.AverageUtilization != nil {
			mv.Current = ptrTo(float64(*current.AverageUtilization))
		}
	}
	return mv
}

func quantity(q *resource.Quantity) float64 {
	if q == nil {
		return 0
	}
	return q.AsApproximateFloat64()
}

func ptrTo[T any](v T) *T { return &v }
