package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func exampleSnapshot() Snapshot {
	s := Snapshot{
		Time:   t0,
		Step:   "step 2/10: QPS wave: rising to 150 req/s",
		Expect: "sample-app-qps scales 2→3 (150 req/s ÷ 50 per pod)",
		Adapter: AdapterView{
			RequestsPerSecond: ptrTo(14.5),
			CacheHitRatio:     ptrTo(0.934),
			SourceLatency: []SourceLatency{
				{Source: "kafka", Mean: 2345 * time.Microsecond, Queries: 4},
				{Source: "prometheus", Mean: 8 * time.Millisecond, Queries: 10},
			},
		},
	}
	for _, h := range exampleHPAs() {
		s.HPAs = append(s.HPAs, hpaView(h))
	}
	s.HPAs[0].LastScaleEvent = "New size: 3; reason: pods metric http_requests_per_second above target"
	return s
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		snap   func() Snapshot
		tty    bool
		golden string
	}{
		{name: "log", snap: exampleSnapshot, golden: "frame.golden"},
		{name: "terminal", snap: exampleSnapshot, tty: true, golden: "frame-tty.golden"},
		{
			name: "empty, adapter unreachable, read errors",
			snap: func() Snapshot {
				return Snapshot{
					Time:    t0,
					Adapter: AdapterView{Err: "scrape adapter metrics: Get \"https://127.0.0.1:6443/metrics\": connection refused"},
					Errors:  []string{"list HPAs in demo: the server could not find the requested resource"},
					Hint:    "poke it meanwhile:\n  kubectl get hpa -n demo\n",
				}
			},
			golden: "frame-empty.golden",
		},
		{
			name: "two namespaces, first scrape",
			snap: func() Snapshot {
				s := exampleSnapshot()
				s.Step, s.Expect, s.Adapter = "", "", AdapterView{}
				s.HPAs[1].Namespace = "other"
				return s
			},
			golden: "frame-namespaces.golden",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.golden, Render(tt.snap(), tt.tty))
		})
	}
}

func TestRenderTerminalClears(t *testing.T) {
	if got := Render(exampleSnapshot(), true); !strings.HasPrefix(got, clearScreen) {
		t.Errorf("terminal frame does not start with the clear sequence: %q", got[:20])
	}
	if got := Render(exampleSnapshot(), false); strings.Contains(got, "\x1b") {
		t.Errorf("log frame holds an escape sequence: %q", got)
	}
}

func TestFormatNumber(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.25, "0.25"}, {0.0314, "0.031"}, {1, "1"}, {2.345, "2.35"}, {12.5, "12.5"},
		{50, "50"}, {148.4, "148"}, {9999, "9999"}, {12345, "12.3k"}, {2.5e6, "2.5M"}, {-40, "-40"},
	}
	for _, tt := range tests {
		if got := formatNumber(tt.in); got != tt.want {
			t.Errorf("formatNumber(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatAge(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0s"}, {1400 * time.Millisecond, "1s"}, {59 * time.Second, "59s"},
		{192 * time.Second, "3m12s"}, {2*time.Hour + 5*time.Minute, "2h5m"},
	}
	for _, tt := range tests {
		if got := formatAge(tt.in); got != tt.want {
			t.Errorf("formatAge(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestIsTerminal checks what is not a terminal, where frames must be
// appended rather than drawn over each other: /dev/null is a character
// device but no terminal.
func TestIsTerminal(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"/dev/null": devNull, "a pipe": w, "a buffer": &strings.Builder{}} {
		if isTerminal(out) {
			t.Errorf("isTerminal(%s) = true, want false", name)
		}
	}
}

func TestPokeHint(t *testing.T) {
	h := pokeHint("/tmp/k", "demo", "/tmp/stack/bin")
	for _, want := range []string{"export KUBECONFIG=/tmp/k", "kubectl get hpa -n demo",
		"PATH=/tmp/stack/bin:$PATH kubectl hpa-signals explain -n demo billing-consumer"} {
		if !strings.Contains(h, want) {
			t.Errorf("hint lacks %q:\n%s", want, h)
		}
	}
	if h := pokeHint("/tmp/k", "demo", ""); strings.Contains(h, "explain") {
		t.Errorf("hint without a plugin names explain:\n%s", h)
	}
}
