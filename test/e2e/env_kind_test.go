//go:build e2e

package e2e

import (
	"context"
	"testing"

	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

func startKindEnv(ctx context.Context, t *testing.T) env.Env {
	t.Fatal("kind environment not wired yet")
	return nil
}
