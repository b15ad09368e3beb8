package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// BinDirEnv names an environment variable that, when set, points at a
// directory holding the control plane binaries; the build script is then
// not run. The kwok stages file is expected at <BinDirEnv>/../stages.yaml.
const BinDirEnv = "HPA_SIGNALS_CONTROL_PLANE_BIN"

// buildScriptPath is the build script relative to the repository root.
const buildScriptPath = "hack/build-control-plane.sh"

// controlPlaneBinaries are the binaries Local starts.
var controlPlaneBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// EnsureBinaries returns the directory holding the control plane binaries,
// building them with hack/build-control-plane.sh unless BinDirEnv is set.
// script may be empty to find the script by walking up from the working
// directory to the repository root. A cold build takes ~13 minutes on 2
// cores; progress goes to progress (os.Stderr when nil).
func EnsureBinaries(ctx context.Context, script string, progress io.Writer) (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if err := checkBinaries(dir); err != nil {
			return "", fmt.Errorf("control plane binaries from $%s: %w", BinDirEnv, err)
		}
		return dir, nil
	}
	if script == "" {
		var err error
		if script, err = findBuildScript(); err != nil {
			return "", err
		}
	}
	if progress == nil {
		progress = os.Stderr
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stdout = &stdout
	cmd.Stderr = progress
	// On cancellation stop the go commands the script runs, not only bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build control plane with %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if err := checkBinaries(dir); err != nil {
		return "", fmt.Errorf("build control plane with %s: %w", script, err)
	}
	return dir, nil
}

func checkBinaries(dir string) error {
	var errs []error
	for _, b := range controlPlaneBinaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fi.Mode()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("%s is not executable", filepath.Join(dir, b)))
		}
	}
	if _, err := os.Stat(stagesFile(dir)); err != nil {
		errs = append(errs, fmt.Errorf("kwok stages: %w", err))
	}
	return errors.Join(errs...)
}

// stagesFile is where the build script puts kwok's Stage objects.
func stagesFile(binDir string) string {
	return filepath.Join(filepath.Dir(binDir), "stages.yaml")
}

// findBuildScript returns the build script of the repository the working
// directory is in.
func findBuildScript() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", buildScriptPath, err)
	}
	return filepath.Join(root, buildScriptPath), nil
}

// RepoRoot walks up from the working directory to the root of the
// hpa-signals module (its go.mod), where manifests/, hack/ and test/ are.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/hpa-signals/hpa-signals\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of github.com/hpa-signals/hpa-signals above the working directory")
		}
		dir = parent
	}
}
