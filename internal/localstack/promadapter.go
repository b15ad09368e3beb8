package localstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// PrometheusAdapterVersion is the prometheus-adapter release hpa-signals
// is compared with (the differential test, the discovery benchmark).
const PrometheusAdapterVersion = "v0.12.0"

// prometheusAdapterModule is prometheus-adapter's Go module and the
// package of its adapter command.
const (
	prometheusAdapterModule  = "sigs.k8s.io/prometheus-adapter"
	prometheusAdapterPackage = prometheusAdapterModule + "/cmd/adapter"
)

// CacheDir is the cache root outside the repository: $HPA_SIGNALS_CACHE,
// else ~/.cache/hpa-signals (where the control plane is built too).
func CacheDir() (string, error) {
	if dir := os.Getenv("HPA_SIGNALS_CACHE"); dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "hpa-signals"), nil
}

// EnsurePrometheusAdapter returns the path of prometheus-adapter's adapter
// binary at version (e.g. PrometheusAdapterVersion), building it from the
// Go module proxy into <CacheDir>/prometheus-adapter/<version> unless that
// directory's stamp says it is there. The build goes through a throw-away
// wrapper module written at run time (a go.mod and nothing else) that
// requires the release, so its dependencies resolve as its own go.mod
// says, with the local toolchain, and the binary lands in the cache. A
// cold build takes minutes (it compiles Kubernetes libraries); the go
// command's output goes to progress (os.Stderr when nil).
func EnsurePrometheusAdapter(ctx context.Context, version string, progress io.Writer) (string, error) {
	if progress == nil {
		progress = os.Stderr
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "prometheus-adapter", version)
	bin := filepath.Join(dir, "adapter")
	stamp := fmt.Sprintf("%s@%s %s", prometheusAdapterPackage, version, goVersion(ctx))
	if got, err := os.ReadFile(filepath.Join(dir, "stamp")); err == nil && string(got) == stamp {
		if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build prometheus-adapter: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", fmt.Errorf("build prometheus-adapter: %w", err)
	}
	defer os.RemoveAll(work)
	gomod := "module hpa-signals.local/prometheus-adapter-build\n\ngo 1.22\n"
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", fmt.Errorf("build prometheus-adapter: %w", err)
	}
	began := time.Now()
	fmt.Fprintf(progress, "building prometheus-adapter %s from the Go module proxy into %s (minutes when cold)\n", version, dir)
	tmp := filepath.Join(work, "adapter")
	for _, args := range [][]string{
		{"get", prometheusAdapterPackage + "@" + version},
		{"build", "-trimpath", "-ldflags", "-s -w", "-o", tmp, prometheusAdapterPackage},
	} {
		if err := goCommand(ctx, work, progress, args...); err != nil {
			return "", fmt.Errorf("build prometheus-adapter %s: %w", version, err)
		}
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("build prometheus-adapter: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stamp"), []byte(stamp), 0o644); err != nil {
		return "", fmt.Errorf("build prometheus-adapter: %w", err)
	}
	fmt.Fprintf(progress, "built prometheus-adapter %s in %s\n", version, time.Since(began).Round(time.Second))
	return bin, nil
}

// PrometheusAdapterSource returns the directory of prometheus-adapter's
// module at version in the Go module cache, downloading it from the module
// proxy if needed, so tests can read the files it ships (its
// docs/sample-config.yaml and deploy/manifests/config-map.yaml) without a
// copy in this repository.
func PrometheusAdapterSource(ctx context.Context, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", prometheusAdapterModule+"@"+version)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("download %s@%s: %w", prometheusAdapterModule, version, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("download %s@%s: read go mod download's answer: %w", prometheusAdapterModule, version, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("download %s@%s: %s", prometheusAdapterModule, version, m.Error)
	}
	return m.Dir, nil
}

// goCommand runs the go command in dir for the wrapper module, stopping
// the whole process group on cancellation.
func goCommand(ctx context.Context, dir string, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// goVersion is the go command's version, so a new toolchain rebuilds.
func goVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return string(bytes.TrimSpace(out))
}
