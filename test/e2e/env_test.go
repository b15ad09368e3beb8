//go:build e2e

package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/hpa-signals/hpa-signals/internal/localstack"
	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// The local stack is one of the scenarios' environments.
var _ env.Env = (*localstack.Stack)(nil)

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
		s, err := localstack.Start(ctx, localstack.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stopAtEnd(t, "stack", s, func() {
			t.Logf("stack at failure:\n%s", s.Summary())
			t.Logf("cluster logs in %s", s.ClusterLogsDir())
		})
		return s
	case "kind":
		return startKindEnv(ctx, t)
	default:
		t.Fatalf("%s=%q: want local or kind", envVar, name)
		return nil
	}
}
