package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseFlagsLoadAndProduce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"load", []string{"--mode=load", "--target-url=http://sample-app.demo.svc", "--rps=150"}, ""},
		{"load holding goroutines", []string{"--mode=load", "--target-url=http://sample-app-goroutines.demo.svc:80", "--rps=20", "--goroutines=50", "--hold=5s"}, ""},
		{"load without target", []string{"--mode=load", "--rps=10"}, "load mode needs --target-url"},
		{"load with a relative target", []string{"--mode=load", "--target-url=sample-app.demo.svc"},
			`--target-url "sample-app.demo.svc": want an http(s) base URL such as http://sample-app.demo.svc`},
		{"load with a query", []string{"--mode=load", "--target-url=http://a/?goroutines=1"},
			`--target-url "http://a/?goroutines=1": want a base URL without query or fragment; use --goroutines and --hold for the query`},
		{"load at zero rps", []string{"--mode=load", "--target-url=http://a", "--rps=0"}, "--rps must be positive, got 0"},
		{"load with negative goroutines", []string{"--mode=load", "--target-url=http://a", "--goroutines=-1"}, "--goroutines must not be negative, got -1"},
		{"load without in-flight room", []string{"--mode=load", "--target-url=http://a", "--max-in-flight=0"}, "--max-in-flight must be at least 1, got 0"},
		{"load with every error", []string{"--mode=load", "--rps=-1", "--request-timeout=0s", "--duration=-1s"},
			"load mode needs --target-url\n--rps must be positive, got -1\n--request-timeout must be positive, got 0s\n--reconnect-interval and --duration must not be negative"},
		{"produce", []string{"--mode=produce", "--brokers=kafka.kafka.svc:9092", "--topic=demo.orders", "--messages=3000"}, ""},
		{"produce without topic", []string{"--mode=produce", "--brokers=kafka.kafka.svc:9092"}, "produce mode needs --brokers and --topic"},
		{"produce nothing", []string{"--mode=produce", "--brokers=a:9092", "--topic=demo.orders", "--messages=0"}, "--messages must be at least 1, got 0"},
		{"produce without time", []string{"--mode=produce", "--brokers=a:9092", "--topic=demo.orders", "--produce-timeout=0s"}, "--produce-timeout must be positive, got 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if got := errString(err); got != tc.wantErr {
				t.Errorf("parseFlags(%q) error = %q, want %q", tc.args, got, tc.wantErr)
			}
		})
	}
}

func TestParseFlagsFillsTheModeConfigs(t *testing.T) {
	c, err := parseFlags([]string{"--mode=produce", "--brokers=a:9092,b:9092", "--topic=demo.orders", "--messages=7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.produce; len(got.Brokers) != 2 || got.Brokers[1] != "b:9092" || got.Topic != "demo.orders" || got.Messages != 7 {
		t.Errorf("produce config = %+v, want brokers [a:9092 b:9092], topic demo.orders, 7 messages", got)
	}
	c, err = parseFlags([]string{"--mode=load", "--target-url=http://svc.ns.svc/", "--goroutines=3", "--hold=2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.load.workURL()
	if want := "http://svc.ns.svc/work?goroutines=3&hold=2s"; err != nil || u != want {
		t.Errorf("workURL() = %q, %v, want %q", u, err, want)
	}
}

// TestRunLoadSendsToWork checks the wiring of load mode to package
// loadgen (whose tests cover the rate and its bounds): the base URL, the
// query and --duration.
func TestRunLoadSendsToWork(t *testing.T) {
	var requests atomic.Int64
	var badPath atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.String(); got != "/work?goroutines=2&hold=3s" {
			badPath.Store(got)
		}
		requests.Add(1)
	}))
	defer ts.Close()
	cfg := LoadConfig{TargetURL: ts.URL + "/", RPS: 100, Goroutines: 2, Hold: 3 * time.Second,
		MaxInFlight: 10, Timeout: time.Second, Duration: 500 * time.Millisecond}
	began := time.Now()
	if err := RunLoad(context.Background(), cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < cfg.Duration || took > cfg.Duration+2*time.Second {
		t.Errorf("RunLoad took %s, want about --duration %s", took, cfg.Duration)
	}
	if n := requests.Load(); n < 40 || n > 60 {
		t.Errorf("server got %d requests in 500ms at 100 rps, want about 50", n)
	}
	if p := badPath.Load(); p != nil {
		t.Errorf("a request asked for %q, want /work?goroutines=2&hold=3s", p)
	}
}
