//go:build e2e

package e2e

import (
	"context"
	"testing"

	"github.com/hpa-signals/hpa-signals/test/e2e/env"
	"github.com/hpa-signals/hpa-signals/test/e2e/kindenv"
)

// startKindEnv runs the scenarios on kind (hack/e2e-kind.sh): the adapter,
// Prometheus, Kafka and the workloads in the cluster.
func startKindEnv(ctx context.Context, t *testing.T) env.Env {
	t.Helper()
	e, err := kindenv.Start(ctx, kindenv.OptionsFromEnv())
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, "kind environment", e, func() {
		e.Kind().SetExportLogs(true)
		t.Logf("kind node logs in %s", e.Kind().LogsDir())
	})
	return e
}
