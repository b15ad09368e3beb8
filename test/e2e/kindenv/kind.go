package kindenv

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
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// ErrKindUnavailable is wrapped by StartKind's error when the kind or
// docker CLI is missing or the Docker engine does not answer, so a caller
// can tell "this machine cannot run kind" from a failing cluster.
var ErrKindUnavailable = errors.New("kind cannot run on this machine")

// ErrDockerImageMissing is wrapped by StartKind's error when an image of
// KindOptions.Images is not in the local Docker.
var ErrDockerImageMissing = errors.New("docker image not found locally")

// DefaultKindClusterName is the kind cluster StartKind uses when
// KindOptions.Name is empty.
const DefaultKindClusterName = "hpa-signals-e2e"

// KindOptions configure StartKind.
type KindOptions struct {
	// Name is the kind cluster's name. If empty, DefaultKindClusterName.
	Name string
	// Config is the kind config file (test/kind/cluster.yaml). It is
	// required when StartKind creates the cluster.
	Config string
	// Reuse uses an existing cluster named Name instead of failing; a
	// reused cluster is never deleted. When none exists, one is created.
	Reuse bool
	// Keep leaves a cluster StartKind created running at Stop, for a later
	// run to Reuse or for a look around.
	Keep bool
	// Images are local Docker images loaded into every node
	// (kind load docker-image), so pods with imagePullPolicy IfNotPresent
	// run them without a registry. They must exist in the local Docker.
	Images []string
	// WorkDir holds the kubeconfig and the exported logs. If empty, a fresh
	// temporary directory.
	WorkDir string
	// ExportLogs runs `kind export logs` into LogsDir at Stop (see also
	// Kind.SetExportLogs).
	ExportLogs bool
	// Wait bounds the cluster's creation (kind create cluster --wait) and
	// the wait for every node to be Ready. If zero, 3m.
	Wait time.Duration
	// KindBinary and DockerBinary are the CLIs run. If empty, "kind" and
	// "docker" from PATH.
	KindBinary, DockerBinary string
	// Progress receives kind's progress output. If nil, os.Stderr.
	Progress io.Writer
}

func (o *KindOptions) defaults() {
	if o.Name == "" {
		o.Name = DefaultKindClusterName
	}
	if o.Wait == 0 {
		o.Wait = 3 * time.Minute
	}
	if o.KindBinary == "" {
		o.KindBinary = "kind"
	}
	if o.DockerBinary == "" {
		o.DockerBinary = "docker"
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
}

// Kind is a kind cluster (Kubernetes in Docker containers) driven through
// the kind CLI. It implements cluster.Cluster. Its methods are safe for concurrent
// use, except Stop.
type Kind struct {
	opts       KindOptions
	workDir    string
	logsDir    string
	kubeconfig string
	created    bool // StartKind created the cluster (it was not reused)

	restConfig *rest.Config
	client     kubernetes.Interface

	exportLogs atomic.Bool
	stopOnce   sync.Once
	stopErr    error
}

var _ cluster.Cluster = (*Kind)(nil)

// StartKind creates the kind cluster opts.Name from opts.Config (or, with
// opts.Reuse, uses the existing one), writes its kubeconfig into the work
// directory, waits until every node is Ready and loads opts.Images into
// the nodes. It fails at once, wrapping ErrKindUnavailable and naming what
// to install or start, when kind or Docker is missing. On a later error a
// cluster it created is deleted (unless opts.Keep).
func StartKind(ctx context.Context, opts KindOptions) (*Kind, error) {
	opts.defaults()
	if err := checkKindTools(ctx, opts.KindBinary, opts.DockerBinary); err != nil {
		return nil, fmt.Errorf("start kind cluster %q: %w", opts.Name, err)
	}
	if err := checkDockerImages(ctx, opts.DockerBinary, opts.Images); err != nil {
		return nil, fmt.Errorf("start kind cluster %q: %w", opts.Name, err)
	}
	k := &Kind{opts: opts, workDir: opts.WorkDir}
	if k.workDir == "" {
		dir, err := os.MkdirTemp("", "hpa-signals-kind-")
		if err != nil {
			return nil, fmt.Errorf("start kind cluster %q: create work dir: %w", opts.Name, err)
		}
		k.workDir = dir
	}
	k.logsDir = filepath.Join(k.workDir, "kind-logs")
	k.kubeconfig = filepath.Join(k.workDir, "kubeconfig")
	if err := os.MkdirAll(k.logsDir, 0o755); err != nil {
		return nil, fmt.Errorf("start kind cluster %q: %w", opts.Name, err)
	}
	k.exportLogs.Store(opts.ExportLogs)

	out, err := k.kind(ctx, nil, "get", "clusters")
	if err != nil {
		return nil, fmt.Errorf("start kind cluster %q: %w", opts.Name, err)
	}
	switch exists := hasKindCluster(out, opts.Name); {
	case exists && !opts.Reuse:
		return nil, fmt.Errorf("start kind cluster %q: it already exists; delete it (%s delete cluster --name %s) or reuse it (KindOptions.Reuse)",
			opts.Name, opts.KindBinary, opts.Name)
	case exists:
		k.progress("reusing the existing cluster")
	default:
		if opts.Config == "" {
			return nil, fmt.Errorf("start kind cluster %q: KindOptions.Config (the kind config file) is required to create it", opts.Name)
		}
		k.progress("creating from %s (takes a minute or two)", opts.Config)
		// --kubeconfig keeps the user's own kubeconfig untouched.
		if _, err := k.kind(ctx, opts.Progress, kindCreateArgs(opts.Name, opts.Config, k.kubeconfig, opts.Wait)...); err != nil {
			// kind deletes a cluster it failed to create.
			return nil, fmt.Errorf("start kind cluster %q: %w", opts.Name, err)
		}
		k.created = true
	}
	if err := k.start(ctx); err != nil {
		stopErr := k.Stop()
		return nil, fmt.Errorf("start kind cluster %q: %w", opts.Name, errors.Join(err, stopErr))
	}
	return k, nil
}

func (k *Kind) start(ctx context.Context) error {
	cfg, err := k.kind(ctx, nil, "get", "kubeconfig", "--name", k.opts.Name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(k.kubeconfig, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if k.restConfig, err = cluster.RESTConfigFromKubeconfig(k.kubeconfig); err != nil {
		return err
	}
	if k.client, err = kubernetes.NewForConfig(k.restConfig); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	err = cluster.WaitFor(ctx, "every kind node Ready", k.opts.Wait, func(ctx context.Context) (bool, error) {
		nodes, err := k.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if len(nodes.Items) == 0 {
			return false, errors.New("no nodes yet")
		}
		for _, n := range nodes.Items {
			if !nodeReady(&n) {
				return false, fmt.Errorf("node %s not Ready", n.Name)
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return k.LoadImages(ctx, k.opts.Images...)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// LoadImages copies local Docker images into every node's containerd
// (kind load docker-image). Images already present are skipped by kind.
func (k *Kind) LoadImages(ctx context.Context, images ...string) error {
	if len(images) == 0 {
		return nil
	}
	k.progress("loading images %s", strings.Join(images, ", "))
	if _, err := k.kind(ctx, nil, kindLoadArgs(k.opts.Name, images)...); err != nil {
		return fmt.Errorf("load images into kind cluster %q: %w", k.opts.Name, err)
	}
	return nil
}

// TagImage gives the image src, already in the nodes (see LoadImages),
// the extra name dst in every node's containerd, so pods naming dst run it
// without a pull. It lets manifests that pin another tag of a locally
// built image run unchanged.
func (k *Kind) TagImage(ctx context.Context, src, dst string) error {
	nodes, err := k.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("tag image %s as %s: %w", src, dst, err)
	}
	for _, node := range nodes {
		if _, err := runCommand(ctx, nil, k.opts.DockerBinary, ctrTagArgs(node, src, dst)...); err != nil {
			return fmt.Errorf("tag image %s as %s on node %s: %w", src, dst, node, err)
		}
	}
	return nil
}

// Nodes returns the names of the cluster's node containers.
func (k *Kind) Nodes(ctx context.Context) ([]string, error) {
	out, err := k.kind(ctx, nil, "get", "nodes", "--name", k.opts.Name)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Name is the kind cluster's name.
func (k *Kind) Name() string { return k.opts.Name }

// Created reports whether StartKind created the cluster (rather than
// reusing one); only a created cluster is deleted at Stop.
func (k *Kind) Created() bool { return k.created }

// Kubeconfig is the path of a cluster-admin kubeconfig.
func (k *Kind) Kubeconfig() string { return k.kubeconfig }

// RESTConfig returns a copy of the cluster-admin client config.
func (k *Kind) RESTConfig() *rest.Config { return rest.CopyConfig(k.restConfig) }

// Client is a cluster-admin clientset.
func (k *Kind) Client() kubernetes.Interface { return k.client }

// LogsDir is where `kind export logs` writes at Stop when logs are
// exported (KindOptions.ExportLogs, SetExportLogs): every node's
// journal, kubelet and container logs.
func (k *Kind) LogsDir() string { return k.logsDir }

// WorkDir holds the kubeconfig and the logs.
func (k *Kind) WorkDir() string { return k.workDir }

// SetExportLogs decides, before Stop, whether Stop exports the cluster's
// logs, e.g. only when a test failed.
func (k *Kind) SetExportLogs(export bool) { k.exportLogs.Store(export) }

// CreateNamespace creates a namespace and waits for its default
// ServiceAccount.
func (k *Kind) CreateNamespace(ctx context.Context, name string) error {
	return cluster.CreateNamespace(ctx, k.client, name, 30*time.Second)
}

// DeleteNamespace deletes a namespace without waiting.
func (k *Kind) DeleteNamespace(ctx context.Context, name string) error {
	return cluster.DeleteNamespace(ctx, k.client, name)
}

// Stop exports the logs if asked, then deletes the cluster if StartKind
// created it and KindOptions.Keep is false. Files are kept. Stop is
// idempotent.
func (k *Kind) Stop() error {
	k.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var errs []error
		if k.exportLogs.Load() {
			if _, err := k.kind(ctx, nil, kindExportLogsArgs(k.opts.Name, k.logsDir)...); err != nil {
				errs = append(errs, err)
			} else {
				k.progress("logs exported to %s", k.logsDir)
			}
		}
		if k.created && !k.opts.Keep {
			if _, err := k.kind(ctx, nil, kindDeleteArgs(k.opts.Name, k.kubeconfig)...); err != nil {
				errs = append(errs, err)
			} else {
				k.progress("deleted")
			}
		} else {
			k.progress("left running (kubeconfig %s; delete it with: %s delete cluster --name %s)", k.kubeconfig, k.opts.KindBinary, k.opts.Name)
		}
		if err := errors.Join(errs...); err != nil {
			k.stopErr = fmt.Errorf("stop kind cluster %q: %w", k.opts.Name, err)
		}
	})
	return k.stopErr
}

func (k *Kind) kind(ctx context.Context, progress io.Writer, args ...string) (string, error) {
	return runCommand(ctx, progress, k.opts.KindBinary, args...)
}

func (k *Kind) progress(format string, args ...any) {
	fmt.Fprintf(k.opts.Progress, "kind cluster %s: "+format+"\n", append([]any{k.opts.Name}, args...)...)
}

// checkKindTools names what to install or start when kind cannot run.
func checkKindTools(ctx context.Context, kind, docker string) error {
	if _, err := exec.LookPath(kind); err != nil {
		return fmt.Errorf("%w: %s not found: install kind v0.29.0 or later (go install sigs.k8s.io/kind@v0.29.0, or a release binary: https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
			ErrKindUnavailable, kind)
	}
	if _, err := exec.LookPath(docker); err != nil {
		return fmt.Errorf("%w: %s not found: kind runs its nodes as Docker containers; install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop",
			ErrKindUnavailable, docker)
	}
	if _, err := runCommand(ctx, nil, docker, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("%w: the Docker engine is not reachable: start it (e.g. sudo systemctl start docker) and check that this user may use it: %w",
			ErrKindUnavailable, err)
	}
	return nil
}

// checkDockerImages fails naming every image missing from the local Docker.
func checkDockerImages(ctx context.Context, docker string, images []string) error {
	var missing []string
	for _, img := range images {
		if _, err := runCommand(ctx, nil, docker, "image", "inspect", "--format", "{{.Id}}", img); err != nil {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; build it first (kind load docker-image copies local images only)", ErrDockerImageMissing, strings.Join(missing, ", "))
	}
	return nil
}

func kindCreateArgs(name, config, kubeconfig string, wait time.Duration) []string {
	return []string{"create", "cluster", "--name", name, "--config", config, "--kubeconfig", kubeconfig, "--wait", wait.String()}
}

func kindLoadArgs(name string, images []string) []string {
	return append([]string{"load", "docker-image", "--name", name}, images...)
}

func kindExportLogsArgs(name, dir string) []string {
	return []string{"export", "logs", dir, "--name", name}
}

func kindDeleteArgs(name, kubeconfig string) []string {
	return []string{"delete", "cluster", "--name", name, "--kubeconfig", kubeconfig}
}

// ctrTagArgs are the docker arguments that tag an image in a node's
// containerd, in the namespace the kubelet's images live in.
func ctrTagArgs(node, src, dst string) []string {
	return []string{"exec", node, "ctr", "--namespace=k8s.io", "images", "tag", "--force", normalizeImageRef(src), normalizeImageRef(dst)}
}

// hasKindCluster reports whether `kind get clusters` output lists name.
// (kind prints "No kind clusters found." on stderr when there are none.)
func hasKindCluster(out, name string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == name {
			return true
		}
	}
	return false
}

// normalizeImageRef expands a Docker image reference the way Docker and
// containerd store it: hpa-signals:e2e becomes
// docker.io/library/hpa-signals:e2e; a reference without tag or digest
// gets :latest.
func normalizeImageRef(ref string) string {
	name, suffix := ref, ":latest"
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		name, suffix = ref[:i], ref[i:]
	} else if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		name, suffix = ref[:i], ref[i:]
	}
	domain, path := "docker.io", name
	if i := strings.IndexByte(name, '/'); i >= 0 && (strings.ContainsAny(name[:i], ".:") || name[:i] == "localhost") {
		domain, path = name[:i], name[i+1:]
	}
	if domain == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	return domain + "/" + path + suffix
}

// runCommand runs name with args and returns its stdout. stderr goes to
// progress too when it is not nil; the error carries stderr's tail.
func runCommand(ctx context.Context, progress io.Writer, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if progress != nil {
		cmd.Stderr = io.MultiWriter(&stderr, progress)
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
