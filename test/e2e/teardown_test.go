//go:build e2e

package e2e

import (
	"context"
	"testing"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// running is what a test starts and tears down when it ends: the local
// control plane, the local stack, the kind environment.
type running interface {
	// Stop stops everything it started and keeps its files.
	Stop() error
	// Remove deletes its files; it is called after Stop.
	Remove() error
	// LogsDir holds the logs worth reading when the test failed.
	LogsDir() string
}

// stopAtEnd stops r when t ends. When t passed, r's files are removed;
// when it failed, onFailure (if not nil) runs first, while r still runs
// (to log a summary or ask for more logs), and the files are kept and
// their place logged. what names r in messages.
func stopAtEnd(t testing.TB, what string, r running, onFailure func()) {
	t.Cleanup(func() {
		failed := t.Failed()
		if failed && onFailure != nil {
			onFailure()
		}
		if err := r.Stop(); err != nil {
			t.Errorf("stop %s: %v", what, err)
		}
		if failed || t.Failed() {
			t.Logf("%s logs kept in %s", what, r.LogsDir())
			return
		}
		if err := r.Remove(); err != nil {
			t.Errorf("remove %s: %v", what, err)
		}
	})
}

// startLocal starts a local control plane for t, stopped when t ends.
func startLocal(ctx context.Context, t testing.TB) *cluster.Local {
	t.Helper()
	l, err := cluster.StartLocal(ctx, cluster.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, "local cluster", l, nil)
	return l
}
