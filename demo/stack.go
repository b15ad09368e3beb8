package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// stackOptions are what the demo asks of the stack.
type stackOptions struct {
	// Progress receives start-up progress (the control-plane build on a
	// cold cache takes minutes).
	Progress io.Writer
}

// stackInfo is what the demo needs to watch and explain the running stack.
type stackInfo struct {
	// Kubeconfig is a cluster-admin kubeconfig path; printed for the user.
	Kubeconfig string
	// LogsDir holds the logs of every process the stack started; printed
	// at the end.
	LogsDir string
	// MetricsURL is the adapter's /metrics endpoint, and MetricsClient the
	// client that may read it (TLS, credentials). MetricsClient nil means
	// http.DefaultClient.
	MetricsURL    string
	MetricsClient *http.Client
	// Namespaces whose HPAs the view shows. If empty, "demo".
	Namespaces []string
	// PluginDir holds kubectl-hpa_signals, the kubectl plugin; printed in
	// the hint. Empty: the hint leaves it out.
	PluginDir string
}

// startStack starts the local stack (internal/localstack: control plane,
// Prometheus, Kafka, the adapter registered through manifests/base, one
// sample-app process per Running pod), applies the HPAs and workloads of
// demo/hpas (manifests/examples with behaviours short enough for a
// story of minutes), and returns the stack as the story's Driver, what the
// view needs, and stop, which tears everything down (idempotent; called on
// every exit path, Ctrl-C included).
func startStack(ctx context.Context, opts stackOptions) (Driver, stackInfo, func() error, error) {
	s, err := localstack.Start(ctx, localstack.Options{Progress: opts.Progress})
	if err != nil {
		return nil, stackInfo{}, func() error { return nil }, err
	}
	stop := s.Stop // idempotent
	if err := cluster.ApplyKustomize(ctx, s.Cluster(), filepath.Join(s.RepoRoot(), "demo", "hpas")); err != nil {
		return nil, stackInfo{}, stop, fmt.Errorf("apply the example HPAs: %w", err)
	}
	fmt.Fprintln(opts.Progress, "demo: applied demo/hpas (manifests/examples with short stabilization windows)")
	info := stackInfo{
		Kubeconfig:    s.Kubeconfig(),
		LogsDir:       s.LogsDir(),
		MetricsURL:    s.AdapterMetricsURL(),
		MetricsClient: s.AdapterHTTPClient(),
		Namespaces:    []string{demoNamespace},
		PluginDir:     filepath.Dir(s.PluginBinary()),
	}
	return s, info, stop, nil
}
