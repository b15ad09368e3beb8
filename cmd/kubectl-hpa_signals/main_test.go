package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArguments(t *testing.T) {
	dir := t.TempDir()
	manifest := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	inDemo := manifest("demo.yaml", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: demo}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, maxReplicas: 3}\n")
	typo := manifest("typo.yaml", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec: {maxReplica: 3}\n")
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stderr string
		stdout string
	}{
		{"no command", nil, 2, "Commands:", ""},
		{"help", []string{"--help"}, 0, "", "explain [-n NAMESPACE] HPA"},
		{"version", []string{"--version"}, 0, "", "dev"},
		{"unknown command", []string{"describe"}, 2, `unknown command "describe"`, ""},
		{"no HPA", []string{"explain"}, 2, "error: give one HPA name, or -f FILE", ""},
		{"two HPAs", []string{"explain", "a", "b"}, 2, "error: give one HPA name, or -f FILE", ""},
		{"name and file", []string{"explain", "-f", "hpa.yaml", "web"}, 2, "error: give an HPA name or -f FILE, not both", ""},
		{"output", []string{"explain", "-o", "yaml", "web"}, 2, `error: --output "yaml": want text or json`, ""},
		{"timeout", []string{"explain", "--timeout", "0s", "web"}, 2, "error: --timeout must be positive, got 0s", ""},
		{"unknown flag", []string{"explain", "--nope", "web"}, 2, "unknown flag: --nope", ""},
		{"missing file", []string{"explain", "--kubeconfig", "/dev/null", "-f", "/nonexistent/hpa.yaml"}, 2, "no such file or directory", ""},
		{"manifest of another namespace", []string{"explain", "--kubeconfig", "/dev/null", "-n", "other", "-f", inDemo}, 2,
			`error: HPA web is in namespace "demo", not "other" given with -n`, ""},
		{"manifest with a typo", []string{"explain", "--kubeconfig", "/dev/null", "-f", typo}, 2,
			`typo.yaml: document 1: HorizontalPodAutoscaler "web": json: unknown field "maxReplica"`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(c.args, &stdout, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.stderr) || !strings.Contains(stdout.String(), c.stdout) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, stdout.String(), stderr.String(), c.code, c.stdout, c.stderr)
			}
		})
	}
}
