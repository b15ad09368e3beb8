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
	return kindenv.StartForTest(ctx, t, kindenv.OptionsFromEnv())
}
