//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// readerNamespace is where a tenant with ordinary rights lives: a
// ServiceAccount that may read the custom and external metrics APIs in its
// own namespace only, as a Role would grant it to a team.
const readerNamespace = "team-b"

// clusterWideMetric is a namespaced: false entry the scope scenario adds to
// the catalog: the request rate of every namespace, readable only from
// namespace "platform".
const clusterWideMetric = "e2e_cluster_requests_per_second"

// scopeScenario (local stack): what a tenant with read rights on the
// metrics APIs in its own namespace can reach through the aggregator.
// Another namespace's namespace metric, consumer group and a topic its own
// group never consumed answer like data that does not exist; a
// cluster-wide entry that does not list the tenant answers like a metric
// that is not in the catalog.
func scopeScenario(ctx context.Context, t *testing.T, e env.Env) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("needs the local stack: it extends the adapter's catalog file and writes to Kafka directly")
	}
	c := e.Cluster()
	reader := newTenant(ctx, t, c, readerNamespace)

	// Custom metrics: the namespace metric of demo, asked in team-b, is a
	// 404 from the adapter (the aggregator authorised a read in team-b);
	// asked in demo it is the aggregator's 403.
	const goroutines = "go_goroutines"
	foreign := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + readerNamespace + "/namespaces/" + demoNamespace + "/" + goroutines
	if _, err := reader.get(ctx, foreign); !apierrors.IsNotFound(err) ||
		!strings.Contains(err.Error(), fmt.Sprintf(`for namespaces %q in namespace %q`, demoNamespace, readerNamespace)) {
		t.Errorf("GET %s as %s: %v, want the adapter's 404 for another namespace's namespace metric", foreign, reader, err)
	}
	inDemo := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + demoNamespace + "/metrics/" + goroutines
	if _, err := reader.get(ctx, inDemo); !apierrors.IsForbidden(err) {
		t.Errorf("GET %s as %s: %v, want 403 from the aggregator", inDemo, reader, err)
	}
	// The same metric is demo's to read.
	if _, err := rawGet(ctx, c, inDemo); err != nil {
		t.Errorf("GET %s as the admin: %v, want demo's value", inDemo, err)
	}

	// Kafka: demo's group answers like a group of team-b's that does not
	// exist.
	lag := func(selector string) error {
		_, err := reader.get(ctx, externalPathIn(readerNamespace, "kafka_consumer_lag", selector))
		return err
	}
	sameNotFound(t, "demo's consumer group asked from team-b",
		lag("group=demo.billing,topic="+topic), "demo.billing",
		lag("group=team-b.nothing,topic="+topic), "team-b.nothing")

	// A topic the tenant's own group never consumed: team-b.reports has
	// committed offsets on demo.orders only; payroll exists and holds
	// records, and answers exactly like a topic that does not exist.
	brokers := s.KafkaBrokers()
	const payroll = "payroll"
	if err := createTopic(ctx, brokers, payroll, 3); err != nil {
		t.Fatal(err)
	}
	if err := e.ProduceBurst(ctx, payroll, 30); err != nil {
		t.Fatal(err)
	}
	if err := commitOffsets(ctx, brokers, "team-b.reports", topic, 0); err != nil {
		t.Fatal(err)
	}
	if err := lag("group=team-b.reports,topic=" + topic); err != nil {
		t.Errorf("team-b.reports on %s, a topic it consumed: %v, want its lag", topic, err)
	}
	sameNotFound(t, "a topic team-b's group never consumed",
		lag("group=team-b.reports,topic="+payroll), payroll,
		lag("group=team-b.reports,topic=no-such-topic"), "no-such-topic")
	// allowedTopics of kafka_consumer_lag_earliest ("{namespace}.*") do not
	// reach payroll either.
	if _, err := reader.get(ctx, externalPathIn(readerNamespace, "kafka_consumer_lag_earliest", "group=team-b.reports,topic="+payroll)); !apierrors.IsNotFound(err) {
		t.Errorf("kafka_consumer_lag_earliest of payroll from team-b: %v, want 404", err)
	}

	// A cluster-wide Prometheus entry that lists only "platform".
	if err := s.ExtendCatalog(`- name: ` + clusterWideMetric + `
  description: Requests per second of every namespace (e2e).
  apis: [external]
  source: prometheus
  namespaced: false
  callerNamespaces: [platform]
  query: sum(rate(http_requests_total{<<.LabelMatchers>>}[30s]))
`); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateNamespace(ctx, "platform"); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	err := cluster.WaitFor(ctx, clusterWideMetric+" served to namespace platform", time.Minute, func(ctx context.Context) (bool, error) {
		v, err := externalValue(ctx, c, "platform", clusterWideMetric, "")
		return err == nil && v > 0, err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, denied := reader.get(ctx, externalPathIn(readerNamespace, clusterWideMetric, ""))
	_, unknown := reader.get(ctx, externalPathIn(readerNamespace, "e2e_no_such_metric", ""))
	sameNotFound(t, "a cluster-wide entry that does not list team-b", denied, clusterWideMetric, unknown, "e2e_no_such_metric")
}

// keyCapScenario (local stack): one tenant asks for many distinct
// selectors, each a new cache key. Its keys are capped per namespace
// (--max-cache-keys-per-namespace of the stack), so the adapter's query
// rate stays within what the cap allows, the tenant gets 429s naming the
// limit, and demo's HPAs keep reading fresh values meanwhile.
func keyCapScenario(ctx context.Context, t *testing.T, e env.Env) {
	s, ok := e.(*localstack.Stack)
	if !ok {
		t.Skip("needs the adapter's own metrics, which the local stack reads directly")
	}
	c := e.Cluster()
	reader := newTenant(ctx, t, c, readerNamespace)
	const (
		selectors   = 1500
		concurrency = 16
		keyCap      = localstack.AdapterMaxCacheKeysPerNamespace
		refresh     = localstack.AdapterRefreshInterval
	)
	queries := func() float64 {
		return adapterCounter(ctx, t, s, "hpa_signals_source_queries_total", `source="prometheus"`)
	}
	hits := func() float64 {
		return adapterCounter(ctx, t, s, "hpa_signals_limit_hits_total", `limit="cache_keys_per_namespace"`)
	}

	// The adapter's query rate without the tenant: demo's HPAs and scenarios.
	q0, t0 := queries(), time.Now()
	time.Sleep(10 * time.Second) // a measurement window, not a wait for a condition
	baseRate := (queries() - q0) / time.Since(t0).Seconds()

	// demo keeps reading its own values while the tenant floods.
	var demoReads, demoFailures atomic.Int64
	var firstDemoFailure atomic.Value
	stopDemo := make(chan struct{})
	var demoWG sync.WaitGroup
	demoWG.Go(func() {
		for {
			select {
			case <-stopDemo:
				return
			case <-time.After(500 * time.Millisecond):
			}
			demoReads.Add(1)
			if _, err := rawGet(ctx, c, externalPath("http_requests_per_second", "handler=work")); err != nil {
				demoFailures.Add(1)
				firstDemoFailure.CompareAndSwap(nil, err.Error())
			}
		}
	})

	q1, h1, start := queries(), hits(), time.Now()
	var next, tooMany, other atomic.Int64
	var firstOther, badTooMany atomic.Value
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > selectors {
					return
				}
				_, err := reader.get(ctx, externalPathIn(readerNamespace, "http_requests_per_second", fmt.Sprintf("handler=h%d", i)))
				switch {
				case apierrors.IsTooManyRequests(err):
					tooMany.Add(1)
					if !strings.Contains(err.Error(), "--max-cache-keys-per-namespace") {
						badTooMany.CompareAndSwap(nil, err.Error())
					}
				case apierrors.IsNotFound(err): // no data for a handler nobody serves: a cached answer
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprint(err))
				}
			}
		})
	}
	wg.Wait()
	window := time.Since(start)
	sent := queries() - q1
	close(stopDemo)
	demoWG.Wait()

	// While no key of the tenant is idle long enough to be evicted (30s),
	// it has at most keyCap keys: keyCap first fetches, and each key
	// refreshed once per refresh interval.
	if window >= 30*time.Second {
		t.Fatalf("the flood took %s; the bound below assumes it ends before the tenant's keys may be evicted (30s)", window)
	}
	tenantBound := float64(keyCap) + float64(keyCap)*(window.Seconds()/refresh.Seconds()+1)
	bound := tenantBound + baseRate*window.Seconds()*1.5 + 10
	t.Logf("%d distinct selectors from %s at c=%d in %s: %d answered 429, %.0f Prometheus queries in all (%.1f/s; demo alone %.1f/s before); bound %.0f (cap %d keys, refresh %s)",
		selectors, readerNamespace, concurrency, window.Round(time.Millisecond), tooMany.Load(), sent, sent/window.Seconds(), baseRate, bound, keyCap, refresh)
	if sent > bound {
		t.Errorf("%.0f Prometheus queries during the flood, want at most %.0f", sent, bound)
	}
	if sent >= selectors {
		t.Errorf("%.0f Prometheus queries for %d distinct selectors: the cap did not hold", sent, selectors)
	}
	if tooMany.Load() < selectors-2*keyCap {
		t.Errorf("%d of %d requests answered 429, want all but the first ~%d", tooMany.Load(), selectors, keyCap)
	}
	if d := hits() - h1; d < float64(tooMany.Load()) {
		t.Errorf("hpa_signals_limit_hits_total{limit=\"cache_keys_per_namespace\"} rose by %.0f, want at least the %d refusals", d, tooMany.Load())
	}
	if n := other.Load(); n > 0 {
		t.Errorf("%d tenant requests failed otherwise, first: %v", n, firstOther.Load())
	}
	if v := badTooMany.Load(); v != nil {
		t.Errorf("a 429 does not name the limit's flag: %v", v)
	}
	if n := demoFailures.Load(); n > 0 {
		t.Errorf("%d of %d reads of demo's metric failed during the flood, first: %v", n, demoReads.Load(), firstDemoFailure.Load())
	}
	// demo's HPAs still read their metrics.
	for _, name := range []string{qpsHPA, latencyHPA, goroutinesHPA, billingHPA, shippingHPA} {
		h, err := getHPA(ctx, c, name)
		if err != nil {
			t.Fatal(err)
		}
		if !reporting(h) {
			t.Errorf("HPA %s after the flood: %s", name, describeHPA(h))
		}
	}
}

// tenant is a ServiceAccount that may get and list the custom and external
// metrics APIs in its own namespace only.
type tenant struct {
	namespace string
	client    kubernetes.Interface
}

func (r *tenant) String() string { return "system:serviceaccount:" + r.namespace + ":reader" }

// newTenant creates namespace, a ServiceAccount "reader" in it and a Role
// and RoleBinding that let it read both metrics APIs there.
func newTenant(ctx context.Context, t *testing.T, c cluster.Cluster, namespace string) *tenant {
	t.Helper()
	if err := c.CreateNamespace(ctx, namespace); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cs := c.Client()
	objs := []error{}
	_, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{})
	objs = append(objs, err)
	_, err = cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"custom.metrics.k8s.io", "external.metrics.k8s.io"},
			Resources: []string{"*"},
			Verbs:     []string{"get", "list"},
		}},
	}, metav1.CreateOptions{})
	objs = append(objs, err)
	_, err = cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: namespace}},
	}, metav1.CreateOptions{})
	objs = append(objs, err)
	for _, err := range objs {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	kubeconfig := filepath.Join(t.TempDir(), namespace+"-reader.kubeconfig")
	if err := cluster.ServiceAccountKubeconfig(ctx, c, namespace, "reader", kubeconfig); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &tenant{namespace: namespace, client: client}
}

// get GETs path as the tenant; see rawGet.
func (r *tenant) get(ctx context.Context, path string) ([]byte, error) {
	return getWith(ctx, r.client, path)
}

// sameNotFound checks that two answers are 404s whose messages are the same
// once each names its own subject.
func sameNotFound(t *testing.T, what string, err error, subject string, reference error, refSubject string) {
	t.Helper()
	if !apierrors.IsNotFound(err) || !apierrors.IsNotFound(reference) {
		t.Errorf("%s: %v; for comparison, %s: %v; want both 404", what, err, refSubject, reference)
		return
	}
	a := strings.ReplaceAll(err.Error(), subject, "X")
	b := strings.ReplaceAll(reference.Error(), refSubject, "X")
	if a != b {
		t.Errorf("%s answers otherwise than %s, which does not exist:\n  %s\n  %s", what, refSubject, err, reference)
	}
}

// externalValue reads an external metric of namespace that has one value.
func externalValue(ctx context.Context, c cluster.Cluster, namespace, metric, selector string) (float64, error) {
	body, err := rawGet(ctx, c, externalPathIn(namespace, metric, selector))
	if err != nil {
		return 0, err
	}
	var list metricValueList
	if err := json.Unmarshal(body, &list); err != nil {
		return 0, err
	}
	if len(list.Items) != 1 {
		return 0, fmt.Errorf("%d values, want 1", len(list.Items))
	}
	return list.Items[0].Value.AsApproximateFloat64(), nil
}

// adapterCounter sums the samples of a counter of the adapter's own
// metrics whose labels contain match.
func adapterCounter(ctx context.Context, t *testing.T, s *localstack.Stack, name, match string) float64 {
	t.Helper()
	code, body, err := httpGet(ctx, s.AdapterHTTPClient(), s.AdapterMetricsURL())
	if err != nil || code != 200 {
		t.Fatalf("GET the adapter's /metrics: %d %v", code, err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("adapter metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// createTopic creates topic with partitions partitions on the stack's Kafka.
func createTopic(ctx context.Context, brokers []string, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

// commitOffsets commits offset for every partition of topic as group,
// without joining it (generation -1), as an admin tool resets offsets.
func commitOffsets(ctx context.Context, brokers []string, group, topic string, offset int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		return fmt.Errorf("metadata of %s: %w", topic, err)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	// Name for requests up to v9, ID from v10 on: kgo picks the version.
	ct.Topic, ct.TopicID = topic, mresp.Topics[0].TopicID
	for _, p := range mresp.Topics[0].Partitions {
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset = p.Partition, offset
		ct.Partitions = append(ct.Partitions, cp)
	}
	req.Topics = append(req.Topics, ct)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("commit offsets of %s on %s: %w", group, topic, err)
	}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("commit offsets of %s on %s/%d: %w", group, topic, p.Partition, err)
			}
		}
	}
	return nil
}
