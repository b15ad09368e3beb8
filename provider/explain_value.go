package provider

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/explain"
)

// explainValue is the value step: the answer the HPA controller gets now,
// read through the same path it uses (the cache, charged to the
// namespace), with the cache's state as it was before this read.
func (p *Provider) explainValue(ctx context.Context, ex *explained, sq *SourceQuery, refused bool) explain.Step {
	step := explain.Step{Name: explain.StepValue, Result: explain.OK}
	if ex.req.API == config.APIPods && ex.req.Name == "" && ex.pods == nil {
		return skipped(explain.StepValue, "not read: the pods the HPA scales are not known (no pod selector)")
	}
	var cache string
	if sq != nil {
		cache = p.describeCache(p.Cache.Peek(sq.Key))
	}
	now := p.Cache.Now()
	var (
		values []namedValue
		err    error
	)
	switch {
	case ex.req.API == config.APIExternal:
		list, e := p.GetExternalMetric(ctx, ex.req.Namespace, ex.req.MetricSelector, cmprovider.ExternalMetricInfo{Metric: ex.req.Metric})
		if err = e; err == nil {
			for _, it := range list.Items {
				values = append(values, namedValue{name: labelString(it.MetricLabels), value: it.Value, at: it.Timestamp.Time})
			}
		}
	case ex.req.Name == "":
		info := cmprovider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: ex.req.Metric}
		list, e := p.GetMetricBySelector(ctx, ex.req.Namespace, ex.pods, info, ex.req.MetricSelector)
		if err = e; err == nil {
			for _, it := range list.Items {
				values = append(values, namedValue{name: it.DescribedObject.Name, value: it.Value, at: it.Timestamp.Time})
			}
		}
	default:
		info := cmprovider.CustomMetricInfo{GroupResource: ex.req.Resource, Namespaced: ex.req.Resource != namespacesResource, Metric: ex.req.Metric}
		v, e := p.GetMetricByName(ctx, types.NamespacedName{Namespace: ex.req.Namespace, Name: ex.req.Name}, info, ex.req.MetricSelector)
		if err = e; err == nil {
			values = append(values, namedValue{name: v.DescribedObject.Name, value: v.Value, at: v.Timestamp.Time})
		}
	}
	if err != nil {
		code, msg := statusOf(err)
		step.Result = explain.Failed
		step.Summary = fmt.Sprintf("the HPA gets %d %s: %s", code, http.StatusText(code), msg)
		step.Fix = valueFix(code, refused)
	} else {
		step.Summary, step.Details = describeValues(ex, values, now)
	}
	if cache != "" {
		step.Details = append(step.Details, cache)
	}
	return step
}

// namedValue is one value the adapter serves, named by its object or
// labels.
type namedValue struct {
	name  string
	value resource.Quantity
	at    time.Time
}

// describeValues summarises the values served: their number, total or
// average as the HPA uses them, and their sample time and age.
func describeValues(ex *explained, values []namedValue, now time.Time) (string, []string) {
	var sum float64
	oldest := now
	for _, v := range values {
		sum += v.value.AsApproximateFloat64()
		if v.at.Before(oldest) {
			oldest = v.at
		}
	}
	sampled := fmt.Sprintf("sampled %s, %s ago", oldest.UTC().Format("15:04:05Z"), roundAge(now.Sub(oldest)))
	var summary string
	switch {
	case len(values) == 1:
		summary = fmt.Sprintf("%s (%s)", formatFloat(sum), sampled)
		if ex.req.API == config.APIExternal && values[0].name != "" {
			summary = fmt.Sprintf("%s for %s (%s)", formatFloat(sum), values[0].name, sampled)
		}
	case ex.req.API == config.APIExternal:
		summary = fmt.Sprintf("%d series, total %s (%s)", len(values), formatFloat(sum), sampled)
	default:
		summary = fmt.Sprintf("%d pods, average %s (oldest %s)", len(values), formatFloat(sum/float64(len(values))), sampled)
	}
	var details []string
	if len(values) > 1 {
		sort.Slice(values, func(i, j int) bool { return values[i].name < values[j].name })
		parts := make([]string, 0, len(values))
		for i, v := range values {
			if i == maxListed {
				parts = append(parts, fmt.Sprintf("and %d more", len(values)-maxListed))
				break
			}
			parts = append(parts, v.name+" "+formatFloat(v.value.AsApproximateFloat64()))
		}
		details = append(details, strings.Join(parts, ", "))
	}
	return summary, details
}

// maxListed bounds the names a step lists.
const maxListed = 10

// valueFix says what to do about the status the HPA gets; refused says
// whether the query step failed.
func valueFix(code int, refused bool) string {
	switch {
	case refused:
		return "the query step says what the adapter refuses and why"
	}
	switch code {
	case http.StatusNotFound:
		return "the source has no value for the query: the source step says why"
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "the source is failing (see the source step); the HPA holds its replica count until it answers"
	case http.StatusTooManyRequests:
		return "a limit of the adapter refused the read; the message names the limit and the flag that raises it"
	default:
		return "the adapter's log has the cause"
	}
}

// describeCache says what the cache held for the key before this read.
func (p *Provider) describeCache(st CacheState) string {
	o := p.Cache.Options()
	now := p.Cache.Now()
	ago := func(t time.Time) string { return roundAge(now.Sub(t)) }
	switch {
	case !st.Cached && st.Dropped != "":
		return fmt.Sprintf("cache: the value was %s %s ago; this read fetched it again", st.Dropped, ago(st.DroppedAt))
	case !st.Cached:
		return fmt.Sprintf("cache: nobody read this value within --keep-alive (%s); this read fetched it", o.KeepAlive)
	case st.Err != nil && !st.AnsweredAt.IsZero() && now.Sub(st.AnsweredAt) <= o.StaleAfter:
		return fmt.Sprintf("cache: serving a stale value: the last answer is %s old and the last refresh failed %s ago (%s); it is served until it is %s old (--max-staleness), then the HPA gets the error and holds its replica count",
			ago(st.AnsweredAt), ago(st.Attempted), p.redact(safeMessage(st.Err)), o.StaleAfter)
	case st.Err != nil:
		return fmt.Sprintf("cache: failing: no answer within --max-staleness (%s); the last refresh failed %s ago: %s", o.StaleAfter, ago(st.Attempted), p.redact(safeMessage(st.Err)))
	case st.Fetching:
		return fmt.Sprintf("cache: refreshing now; the last answer is %s old", ago(st.AnsweredAt))
	case st.NoData != nil:
		return fmt.Sprintf("cache: fresh answer \"no data\", fetched %s ago; refreshed every %s while read", ago(st.AnsweredAt), o.RefreshInterval)
	default:
		return fmt.Sprintf("cache: fresh, fetched %s ago; refreshed every %s while read", ago(st.AnsweredAt), o.RefreshInterval)
	}
}

// roundAge renders an age to a tenth of a second below 10s, else to the
// second.
func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// formatFloat renders a value with at most three decimals, as the metrics
// APIs carry it.
func formatFloat(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// labelString renders labels as a selector, sorted by key.
func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}
