//go:build e2e

package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/hpa-signals/hpa-signals/test/e2e/cluster"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
	"github.com/hpa-signals/hpa-signals/test/e2e/stack"
)

// envVar selects where the scenarios run: unset or "local" for the local
// stack (control plane, Prometheus, Kafka and the workloads as processes on
// 127.0.0.1), "kind" for a kind cluster (hack/e2e-kind.sh).
const envVar = "HPA_SIGNALS_E2E_ENV"

// startEnv starts the environment the scenarios run in; it is stopped when
// t ends and its logs are kept when t failed.
func startEnv(ctx context.Context, t *testing.T) env.Env {
	t.Helper()
	switch name := os.Getenv(envVar); name {
	case "", "local":
		return localEnv{stack.StartForTest(ctx, t, stack.Options{})}
	case "kind":
		return startKindEnv(ctx, t)
	default:
		t.Fatalf("%s=%q: want local or kind", envVar, name)
		return nil
	}
}

// localEnv is the local stack as an env.Env.
type localEnv struct{ s *stack.Stack }

func (e localEnv) Cluster() cluster.Cluster { return e.s.Cluster() }

func (e localEnv) SetLoad(_ context.Context, namespace, deployment string, rps float64, load env.Load) error {
	var opts []stack.LoadOption
	if load.Goroutines > 0 {
		opts = append(opts, stack.HoldGoroutines(load.Goroutines, load.Hold))
	}
	e.s.SetLoad(namespace, deployment, rps, opts...)
	return nil
}

func (e localEnv) ProduceBurst(ctx context.Context, topic string, n int) error {
	return e.s.ProduceBurst(ctx, topic, n)
}

func (e localEnv) StopPrometheus(context.Context) error {
	e.s.StopPrometheus()
	return nil
}

func (e localEnv) StartPrometheus(context.Context) error { return e.s.StartPrometheus() }

func (e localEnv) LogsDir() string { return e.s.LogsDir() }
