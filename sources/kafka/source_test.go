package kafka

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"k8s.io/klog/v2"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

func TestWireTypesMirrorKafkaGo(t *testing.T) {
	if err := checkWireTypes(); err != nil {
		t.Fatal(err)
	}
}

// Requests counted at the brokers. Every evaluation sends one OffsetFetch
// to the group coordinator and one ListOffsets for end offsets to each
// leader, each carrying all of that broker's partitions. Log-start offsets
// are read (a second ListOffsets per leader) only when the cache holds none
// or they are a metadataTTL old: a warm evaluation sends exactly one
// ListOffsets per broker, a cold one exactly two. A partition that lags by
// at most 4 is read (one Fetch) when first seen, in case its lag is
// transaction markers alone.
func TestRequestsPerEvaluation(t *testing.T) { forEachMode(t, testRequestsPerEvaluation) }

func testRequestsPerEvaluation(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 12)
	b.createTopic("payments", 7)
	offsets := map[string]map[int32]int64{"orders": {}, "payments": {}}
	leaders := map[int32]bool{}
	for p := int32(0); p < 12; p++ {
		b.produce("orders", p, 3, nil)
		offsets["orders"][p] = 1
		leaders[b.c.LeaderFor("orders", p)] = true
	}
	for p := int32(0); p < 7; p++ {
		b.produce("payments", p, 2, nil)
		offsets["payments"][p] = 0
		leaders[b.c.LeaderFor("payments", p)] = true
	}
	if len(leaders) != 3 {
		t.Fatalf("partitions are led by brokers %v, want all 3", leaders)
	}
	b.commit("billing", offsets)
	const ttl = time.Minute
	cfg := b.clusterConfig("main")
	cfg.MetadataTTL = config.Duration{Duration: ttl}
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{cfg}, Options{Clock: fc})
	coordinator := b.c.CoordinatorFor("billing")
	perLeader := func(n int) map[int32]int {
		m := map[int32]int{}
		for id := range leaders {
			if n > 0 {
				m[id] = n
			}
		}
		return m
	}

	all := fromCatalog(t, Query{Cluster: "main", Group: "billing"})
	named := fromCatalog(t, Query{Cluster: "main", Group: "billing", Topics: []string{"orders", "payments"}, Signal: config.KafkaLagMax})
	for _, st := range []struct {
		name     string
		advance  time.Duration
		q        Query
		want     float64
		cold     bool // first evaluation: coordinator and metadata looked up
		logStart int  // log-start ListOffsets per leader
	}{
		{"cold", 0, all, 12*2 + 7*2, true, 1},
		{"warm", 0, all, 12*2 + 7*2, false, 0},
		{"warm, another query on the same partitions", 0, named, 2, false, 0},
		{"warm, 1ns before the TTL", ttl - time.Nanosecond, all, 12*2 + 7*2, false, 0},
		{"log starts a TTL old", time.Nanosecond, named, 2, false, 1},
		{"warm again", time.Second, all, 12*2 + 7*2, false, 0},
	} {
		t.Run(st.name, func(t *testing.T) {
			fc.Step(st.advance)
			b.counts.reset()
			r := evaluate(t, s, st.q)
			t.Logf("requests: %s", b.counts)
			if r.Value != st.want {
				t.Errorf("value = %v, want %v", r.Value, st.want)
			}
			if got, want := b.counts.byBroker("OffsetFetch"), map[int32]int{coordinator: 1}; !maps.Equal(got, want) {
				t.Errorf("OffsetFetch per broker = %v, want %v (the coordinator)", got, want)
			}
			if got, want := b.counts.byBroker("kind:ListOffsets(-1)"), perLeader(1); !maps.Equal(got, want) {
				t.Errorf("end-offset ListOffsets per broker = %v, want %v", got, want)
			}
			if got, want := b.counts.byBroker("kind:ListOffsets(-2)"), perLeader(st.logStart); !maps.Equal(got, want) {
				t.Errorf("log-start ListOffsets per broker = %v, want %v", got, want)
			}
			if got, want := b.counts.byBroker("ListOffsets"), perLeader(1+st.logStart); !maps.Equal(got, want) {
				t.Errorf("ListOffsets per broker = %v, want %v", got, want)
			}
			if n := b.counts.total("FindCoordinator"); st.cold != (n == 1) || n > 1 {
				t.Errorf("FindCoordinator requests = %d, want 1 on the cold evaluation and 0 after", n)
			}
			if n := b.counts.total("Metadata"); !st.cold && n != 0 {
				t.Errorf("Metadata requests = %d, want 0 on a warm evaluation", n)
			}
			if n := b.counts.total("DescribeGroups"); n != 0 {
				t.Errorf("DescribeGroups requests = %d, want 0", n)
			}
			// Every partition lags by 2, which may be transaction markers
			// alone: each is read once, when first seen (records.go).
			if n, want := b.counts.total("Fetch"), map[bool]int{true: 12 + 7}[st.cold]; n != want {
				t.Errorf("Fetch requests = %d, want %d", n, want)
			}
		})
	}
}

func TestSASL(t *testing.T) { forEachMode(t, testSASL) }

func testSASL(t *testing.T, mode brokerMode) {
	const (
		plainPass = "pl4in-Secret-Value"
		scram256  = "scr4m256-Secret-Value"
		scram512  = "scr4m512-Secret-Value"
	)
	b := newBroker(t, mode, kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", plainPass),
		kfake.Superuser("SCRAM-SHA-256", "user256", scram256),
		kfake.Superuser("SCRAM-SHA-512", "user512", scram512),
	)
	dir := t.TempDir()
	passFile := func(name, pass string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("TEST_KAFKA_PASSWORD_256", scram256)
	t.Setenv("TEST_KAFKA_PASSWORD_WRONG", "not-the-"+scram256)

	var logs bytes.Buffer
	klog.LogToStderr(false)
	klog.SetOutput(&logs)
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", "10")
	t.Cleanup(func() { klog.LogToStderr(true); _ = fs.Set("v", "0") })

	secrets := []string{plainPass, scram256, scram512}
	for _, tc := range []struct {
		name string
		sasl config.KafkaSASL
		ok   bool
	}{
		{"PLAIN from file", config.KafkaSASL{Mechanism: "PLAIN", Username: "plainuser", PasswordFile: passFile("plain", plainPass)}, true},
		{"SCRAM-SHA-256 from env", config.KafkaSASL{Mechanism: "SCRAM-SHA-256", Username: "user256", PasswordEnv: "TEST_KAFKA_PASSWORD_256"}, true},
		{"SCRAM-SHA-512 from file", config.KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "user512", PasswordFile: passFile("512", scram512)}, true},
		{"PLAIN wrong password", config.KafkaSASL{Mechanism: "PLAIN", Username: "plainuser", PasswordFile: passFile("plain-wrong", "x"+plainPass)}, false},
		{"SCRAM-SHA-256 wrong password", config.KafkaSASL{Mechanism: "SCRAM-SHA-256", Username: "user256", PasswordEnv: "TEST_KAFKA_PASSWORD_WRONG"}, false},
		{"SCRAM-SHA-512 wrong password", config.KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "user512", PasswordFile: passFile("512-wrong", scram256)}, false},
		{"wrong mechanism for the user", config.KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "user256", PasswordEnv: "TEST_KAFKA_PASSWORD_256"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := b.clusterConfig("secure")
			cfg.SASL = &tc.sasl
			cfg.RequestTimeout = config.Duration{Duration: 3 * time.Second}
			s := newSource(t, []config.KafkaCluster{cfg}, Options{})
			_, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "secure", Group: "nobody"}))
			if tc.ok {
				// Authenticated: the broker answered that the group is unknown.
				if !errors.Is(err, ErrUnknownGroup) {
					t.Fatalf("error = %v, want ErrUnknownGroup (authenticated)", err)
				}
				return
			}
			if err == nil || errors.Is(err, ErrUnknownGroup) {
				t.Fatalf("error = %v, want an authentication failure", err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), `cluster "secure"`) {
				t.Errorf("error %q does not name the cluster", err)
			}
			for _, secret := range append(secrets, "x"+plainPass, "not-the-"+scram256) {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the password", err)
				}
			}
		})
	}
	klog.Flush()
	for _, secret := range append(secrets, "x"+plainPass, "not-the-"+scram256) {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("klog output contains a password")
		}
	}
}

func TestNewReadsSecretsAndFailsClearly(t *testing.T) {
	t.Setenv("TEST_KAFKA_EMPTY", "")
	for _, tc := range []struct {
		name string
		sasl *config.KafkaSASL
		tls  *config.KafkaTLS
		want string
	}{
		{"unset env", &config.KafkaSASL{Mechanism: "PLAIN", Username: "u", PasswordEnv: "TEST_KAFKA_UNSET_VAR"}, nil, "TEST_KAFKA_UNSET_VAR"},
		{"empty env", &config.KafkaSASL{Mechanism: "PLAIN", Username: "u", PasswordEnv: "TEST_KAFKA_EMPTY"}, nil, "password is empty"},
		{"missing file", &config.KafkaSASL{Mechanism: "PLAIN", Username: "u", PasswordFile: "/nonexistent/pass"}, nil, "/nonexistent/pass"},
		{"missing CA", nil, &config.KafkaTLS{CAFile: "/nonexistent/ca.pem"}, "caFile"},
		{"missing client certificate", nil, &config.KafkaTLS{CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"}, "/nonexistent/tls.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := catalogCluster(t, "{name: c, brokers: ['127.0.0.1:1']}")
			c.SASL, c.TLS = tc.sasl, tc.tls
			_, err := New([]config.KafkaCluster{c}, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `cluster "c"`) {
				t.Fatalf("New error = %v, want one naming the cluster and %q", err, tc.want)
			}
		})
	}
}

// An unreachable cluster does not fail New; its evaluations fail with an
// error naming the cluster, never a zero value.
func TestUnreachableCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	down := catalogCluster(t, "{name: down, brokers: ['"+addr+"'], dialTimeout: 200ms, requestTimeout: 1s}")
	s := newSource(t, []config.KafkaCluster{down}, Options{Registerer: reg})
	r, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "down", Group: "g"}))
	if err == nil || !strings.Contains(err.Error(), `cluster "down"`) {
		t.Fatalf("Evaluate = %v, %v; want an error naming the cluster", r.Value, err)
	}
	if n := testutil.ToFloat64(s.metrics.clusterQueries.WithLabelValues("down", "success")); n != 0 {
		t.Errorf("success count = %v, want 0", n)
	}
	if n := testutil.ToFloat64(s.metrics.clusterQueries.WithLabelValues("down", "error")) + testutil.ToFloat64(s.metrics.clusterQueries.WithLabelValues("down", "timeout")); n != 1 {
		t.Errorf("queries counted = %v, want 1", n)
	}
}

// Stopping every broker mid-test turns evaluations into errors; a cluster
// started again on the same ports is picked up without a new Source.
func TestClusterRestart(t *testing.T) { forEachMode(t, testClusterRestart) }

func testClusterRestart(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	seed := func(b *broker) {
		b.createTopic("orders", 3)
		for p := int32(0); p < 3; p++ {
			b.produce("orders", p, 5, nil)
		}
		b.commit("g", map[string]map[int32]int64{"orders": {0: 1, 1: 2, 2: 3}})
	}
	seed(b)
	addrs := b.c.ListenAddrs()
	cfg := b.clusterConfig("main")
	cfg.RequestTimeout = config.Duration{Duration: 2 * time.Second}
	s := newSource(t, []config.KafkaCluster{cfg}, Options{})
	q := fromCatalog(t, Query{Cluster: "main", Group: "g"})
	if r := evaluate(t, s, q); r.Value != 9 {
		t.Fatalf("lag before restart = %v, want 9", r.Value)
	}

	b.c.Close()
	r, err := s.Evaluate(context.Background(), q)
	if err == nil {
		t.Fatalf("Evaluate with the cluster down = %v, want an error", r.Value)
	}
	if !strings.Contains(err.Error(), `cluster "main"`) {
		t.Errorf("error %q does not name the cluster", err)
	}
	t.Logf("while down: %v", err)

	ports := make([]int, len(addrs))
	for i, a := range addrs {
		_, p, _ := net.SplitHostPort(a)
		ports[i], _ = strconv.Atoi(p)
	}
	b2 := newBroker(t, mode, kfake.Ports(ports...))
	seed(b2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := s.Evaluate(context.Background(), q)
		if err == nil {
			if r.Value != 9 {
				t.Fatalf("lag after restart = %v, want 9", r.Value)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 20s after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConcurrentEvaluate(t *testing.T) { forEachMode(t, testConcurrentEvaluate) }

func testConcurrentEvaluate(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 6)
	offsets := map[int32]int64{}
	for p := int32(0); p < 6; p++ {
		b.produce("orders", p, 10, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) })
		offsets[p] = int64(p)
	}
	b.commit("g", map[string]map[int32]int64{"orders": offsets})
	reg := prometheus.NewRegistry()
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Registerer: reg})
	signals := []config.KafkaSignal{config.KafkaLag, config.KafkaLagMax, config.KafkaLagSeconds, config.KafkaTimeToDrain, config.KafkaStalledPartitions}
	want := map[config.KafkaSignal]float64{config.KafkaLag: 60 - 15, config.KafkaLagMax: 10}

	queries := map[config.KafkaSignal][2]Query{} // all topics, orders
	for _, sig := range signals {
		queries[sig] = [2]Query{
			fromCatalog(t, Query{Cluster: "main", Group: "g", Signal: sig}),
			fromCatalog(t, Query{Cluster: "main", Group: "g", Signal: sig, Topics: []string{"orders"}}),
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := signals[rand.IntN(len(signals))]
			q := queries[sig][i%2]
			r, err := s.Evaluate(context.Background(), q)
			if err != nil && !(sig == config.KafkaTimeToDrain && errors.Is(err, ErrNoData)) {
				errs <- err
				return
			}
			if w, ok := want[sig]; ok && r.Value != w {
				errs <- errors.New(string(sig) + ": got " + strconv.FormatFloat(r.Value, 'g', -1, 64))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ok := testutil.ToFloat64(s.metrics.clusterQueries.WithLabelValues("main", "success"))
	noData := testutil.ToFloat64(s.metrics.clusterQueries.WithLabelValues("main", "no_data"))
	if ok+noData != 50 {
		t.Errorf("queries counted: %v success + %v no_data, want 50 in all", ok, noData)
	}
}
