package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		cond        func(calls int) (bool, error)
		wantErr     error
		wantMessage string
		wantCalls   int
	}{
		{
			name:      "true at once",
			cond:      func(int) (bool, error) { return true, nil },
			wantCalls: 1,
		},
		{
			name: "transient errors then true",
			cond: func(n int) (bool, error) {
				if n < 3 {
					return false, errBoom
				}
				return true, nil
			},
			wantCalls: 3,
		},
		{
			name:        "StopWaiting returns at once",
			cond:        func(int) (bool, error) { return false, StopWaiting(errBoom) },
			wantErr:     errBoom,
			wantMessage: "wait for thing: boom",
			wantCalls:   1,
		},
		{
			name:        "timeout reports the last error",
			cond:        func(int) (bool, error) { return false, errBoom },
			wantErr:     context.DeadlineExceeded,
			wantMessage: "(last error: boom)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := WaitFor(context.Background(), "thing", 350*time.Millisecond, func(context.Context) (bool, error) {
				calls++
				return tt.cond(calls)
			})
			if tt.wantErr == nil && err != nil {
				t.Fatalf("WaitFor() = %v, want nil", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("WaitFor() = %v, want %v", err, tt.wantErr)
			}
			if tt.wantMessage != "" && !strings.Contains(err.Error(), tt.wantMessage) {
				t.Errorf("WaitFor() = %q, want it to contain %q", err, tt.wantMessage)
			}
			if tt.wantCalls != 0 && calls != tt.wantCalls {
				t.Errorf("cond called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}
