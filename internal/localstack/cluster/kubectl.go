package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// KubectlPath is the kubectl binary the helpers run. kubectl v1.32 talks to
// a v1.37 server (it only warns about the version skew).
var KubectlPath = "kubectl"

// Kubectl runs kubectl against c with args and stdin (may be empty) and
// returns its stdout. The error carries stderr.
func Kubectl(ctx context.Context, c Cluster, stdin string, args ...string) (string, error) {
	full := append([]string{"--kubeconfig", c.Kubeconfig()}, args...)
	cmd := exec.CommandContext(ctx, KubectlPath, full...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Apply applies the YAML manifests in manifest (several documents allowed)
// with `kubectl apply -f -`. Extra args (e.g. "--dry-run=server") are
// appended.
func Apply(ctx context.Context, c Cluster, manifest string, extra ...string) error {
	args := append([]string{"apply", "-f", "-"}, extra...)
	if _, err := Kubectl(ctx, c, manifest, args...); err != nil {
		return fmt.Errorf("apply manifest: %w", err)
	}
	return nil
}

// ApplyKustomize applies the kustomization in dir with `kubectl apply -k`.
// Extra args (e.g. "--dry-run=server") are appended.
func ApplyKustomize(ctx context.Context, c Cluster, dir string, extra ...string) error {
	args := append([]string{"apply", "-k", dir}, extra...)
	if _, err := Kubectl(ctx, c, "", args...); err != nil {
		return fmt.Errorf("apply kustomization %s: %w", dir, err)
	}
	return nil
}
