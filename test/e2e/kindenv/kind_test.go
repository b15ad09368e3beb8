package kindenv

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKindCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []string
		want string
	}{
		{"create", kindCreateArgs("e2e", "test/kind/cluster.yaml", "/w/kubeconfig", 3*time.Minute),
			"create cluster --name e2e --config test/kind/cluster.yaml --kubeconfig /w/kubeconfig --wait 3m0s"},
		{"load", kindLoadArgs("e2e", []string{"hpa-signals:e2e", "hpa-signals-sample-app:e2e"}),
			"load docker-image --name e2e hpa-signals:e2e hpa-signals-sample-app:e2e"},
		{"export logs", kindExportLogsArgs("e2e", "/w/kind-logs"), "export logs /w/kind-logs --name e2e"},
		{"delete", kindDeleteArgs("e2e", "/w/kubeconfig"), "delete cluster --name e2e --kubeconfig /w/kubeconfig"},
		{"tag in a node", ctrTagArgs("e2e-worker", "hpa-signals-sample-app:e2e", "hpa-signals-sample-app:dev"),
			"exec e2e-worker ctr --namespace=k8s.io images tag --force docker.io/library/hpa-signals-sample-app:e2e docker.io/library/hpa-signals-sample-app:dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.got, " "); got != tc.want {
				t.Errorf("args = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNormalizeImageRef(t *testing.T) {
	for ref, want := range map[string]string{
		"hpa-signals:e2e":                "docker.io/library/hpa-signals:e2e",
		"hpa-signals":                    "docker.io/library/hpa-signals:latest",
		"prom/prometheus:v2.55.1":        "docker.io/prom/prometheus:v2.55.1",
		"ghcr.io/org/app:1":              "ghcr.io/org/app:1",
		"localhost:5000/app":             "localhost:5000/app:latest",
		"localhost/app:2":                "localhost/app:2",
		"registry.k8s.io/pause@sha256:0": "registry.k8s.io/pause@sha256:0",
		"docker.io/library/busybox:1.36": "docker.io/library/busybox:1.36",
	} {
		if got := normalizeImageRef(ref); got != want {
			t.Errorf("normalizeImageRef(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestHasKindCluster(t *testing.T) {
	out := "demo\nhpa-signals-e2e\n"
	if !hasKindCluster(out, "hpa-signals-e2e") || !hasKindCluster(out, "demo") {
		t.Errorf("hasKindCluster(%q) misses a listed cluster", out)
	}
	if hasKindCluster(out, "hpa-signals") || hasKindCluster("", "demo") {
		t.Errorf("hasKindCluster matched a cluster that is not listed")
	}
}

// fakeCLI writes an executable shell script dir/name that appends its
// arguments to dir/calls and runs body.
func fakeCLI(t *testing.T, dir, name, body string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("fake CLIs are shell scripts")
	}
	path := filepath.Join(dir, name)
	script := "#!/bin/sh\necho \"" + name + " $*\" >> '" + filepath.Join(dir, "calls") + "'\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func calls(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func TestStartKindNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	kind := fakeCLI(t, dir, "kind", "exit 0")
	deadDocker := fakeCLI(t, dir, "docker-down", `echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2; exit 1`)
	for _, tc := range []struct {
		name         string
		kind, docker string
		want         string
	}{
		{"no kind", filepath.Join(dir, "no-kind"), deadDocker, "no-kind not found: install kind v0.29.0 or later"},
		{"no docker", kind, filepath.Join(dir, "no-docker"), "no-docker not found: kind runs its nodes as Docker containers; install Docker Engine"},
		{"docker engine down", kind, deadDocker, "the Docker engine is not reachable: start it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := StartKind(context.Background(), KindOptions{KindBinary: tc.kind, DockerBinary: tc.docker, Progress: io.Discard, WorkDir: t.TempDir()})
			if !errors.Is(err, ErrKindUnavailable) {
				t.Fatalf("StartKind() = %v, want an error wrapping ErrKindUnavailable", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("StartKind() = %q, want it to contain %q", err, tc.want)
			}
		})
	}
	if !slices.Contains(calls(t, dir), "docker-down info --format {{.ServerVersion}}") {
		t.Errorf("docker info was not run to check the engine; calls: %q", calls(t, dir))
	}
}

func TestStartKindRefusesBeforeTouchingAnything(t *testing.T) {
	for _, tc := range []struct {
		name        string
		clusters    string // what `kind get clusters` prints
		imageExists bool
		opts        KindOptions
		want        string
	}{
		{"existing cluster without Reuse", "other\nhpa-signals-e2e", true, KindOptions{Config: "cluster.yaml"},
			`start kind cluster "hpa-signals-e2e": it already exists; delete it (`},
		{"no config to create from", "other", true, KindOptions{},
			`start kind cluster "hpa-signals-e2e": KindOptions.Config (the kind config file) is required to create it`},
		{"missing image", "", false, KindOptions{Config: "cluster.yaml", Images: []string{"hpa-signals:e2e"}},
			"docker image not found locally: hpa-signals:e2e; build it first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			imageStatus := "1"
			if tc.imageExists {
				imageStatus = "0"
			}
			opts := tc.opts
			opts.KindBinary = fakeCLI(t, dir, "kind", `[ "$1 $2" = "get clusters" ] && printf '`+tc.clusters+`\n'; exit 0`)
			opts.DockerBinary = fakeCLI(t, dir, "docker", `[ "$1" = image ] && exit `+imageStatus+`; exit 0`)
			opts.Progress, opts.WorkDir = io.Discard, dir
			_, err := StartKind(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartKind() = %v, want an error containing %q", err, tc.want)
			}
			for _, c := range calls(t, dir) {
				if strings.HasPrefix(c, "kind create") || strings.HasPrefix(c, "kind delete") || strings.HasPrefix(c, "kind load") {
					t.Errorf("StartKind ran %q before refusing", c)
				}
			}
		})
	}
}

func TestKindStopDeletesOnlyWhatItCreated(t *testing.T) {
	for _, tc := range []struct {
		name      string
		created   bool
		keep      bool
		export    bool
		wantCalls []string
	}{
		{"created", true, false, false, []string{"kind delete cluster --name e2e --kubeconfig WORK/kubeconfig"}},
		{"created, logs exported first", true, false, true, []string{
			"kind export logs WORK/kind-logs --name e2e",
			"kind delete cluster --name e2e --kubeconfig WORK/kubeconfig",
		}},
		{"created and kept", true, true, false, nil},
		{"reused", false, false, true, []string{"kind export logs WORK/kind-logs --name e2e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k := &Kind{
				opts:    KindOptions{Name: "e2e", Keep: tc.keep, KindBinary: fakeCLI(t, dir, "kind", "exit 0"), Progress: io.Discard},
				workDir: dir, logsDir: filepath.Join(dir, "kind-logs"), kubeconfig: filepath.Join(dir, "kubeconfig"),
				created: tc.created,
			}
			k.SetExportLogs(tc.export)
			if err := k.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := k.Stop(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range calls(t, dir) {
				got = append(got, strings.ReplaceAll(c, dir, "WORK"))
			}
			if !slices.Equal(got, tc.wantCalls) {
				t.Errorf("Stop (twice) ran %q, want %q", got, tc.wantCalls)
			}
		})
	}
}

func TestKindStopReportsAFailedDelete(t *testing.T) {
	dir := t.TempDir()
	k := &Kind{
		opts:    KindOptions{Name: "e2e", KindBinary: fakeCLI(t, dir, "kind", `echo "boom" >&2; exit 1`), Progress: io.Discard},
		workDir: dir, kubeconfig: filepath.Join(dir, "kubeconfig"), created: true,
	}
	err := k.Stop()
	if err == nil || !strings.Contains(err.Error(), `stop kind cluster "e2e": kind delete cluster --name e2e`) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Stop() = %v, want the failed delete with kind's stderr", err)
	}
}
