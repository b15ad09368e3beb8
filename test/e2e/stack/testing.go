package stack

import (
	"context"
	"testing"
)

// StartForTest starts a stack for t: everything is stopped when t ends;
// the work directory is removed when t passed and kept, with its path and
// the stack's summary logged, when it failed. Start-up errors fail t at
// once.
func StartForTest(ctx context.Context, t testing.TB, opts Options) *Stack {
	t.Helper()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		failed := t.Failed()
		if failed {
			t.Logf("stack at failure:\n%s", s.Summary())
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		if failed || t.Failed() {
			t.Logf("stack logs kept in %s (cluster logs in %s)", s.LogsDir(), s.ClusterLogsDir())
			return
		}
		if err := s.Remove(); err != nil {
			t.Errorf("remove stack: %v", err)
		}
	})
	return s
}
