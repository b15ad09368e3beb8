package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// DefaultControllers are the kube-controller-manager controllers Local runs:
// what Deployments, ServiceAccounts, HPAs, PodDisruptionBudgets, aggregated
// ClusterRoles, garbage collection and namespace deletion need. There is no
// node-lifecycle controller (kwok owns the nodes).
var DefaultControllers = []string{
	"serviceaccount-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
	"deployment-controller",
	"replicaset-controller",
	"horizontal-pod-autoscaler-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"disruption-controller",
}

// LocalOptions configure StartLocal. The zero value is usable.
type LocalOptions struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kwok, with kwok's stages.yaml in its parent. If
	// empty, EnsureBinaries finds or builds them.
	BinDir string
	// BuildScript is the build script EnsureBinaries runs. If empty, it is
	// found by walking up from the working directory.
	BuildScript string
	// Progress receives build output and start-up progress. If nil,
	// os.Stderr is used.
	Progress io.Writer
	// WorkDir holds state (PKI, kubeconfigs, etcd data) and logs. If empty, a
	// fresh temporary directory is created. It must not hold a previous run.
	WorkDir string
	// NodeName is the name of the kwok node. If empty, "kwok-node-0".
	NodeName string
	// Controllers are the kube-controller-manager controllers. If nil,
	// DefaultControllers.
	Controllers []string
	// HPASyncPeriod is the HPA controller's sync period. If zero, 2s.
	HPASyncPeriod time.Duration
	// ExtraArgs are appended to a component's flags, keyed by component name
	// ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
	// "kwok"). A repeated scalar flag overrides the harness' value; a
	// repeated list flag (e.g. --disable-admission-plugins) adds to it.
	ExtraArgs map[string][]string
	// ReadyTimeout bounds start-up after the binaries exist. If zero, 2m.
	ReadyTimeout time.Duration
}

func (o *LocalOptions) defaults() {
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.NodeName == "" {
		o.NodeName = "kwok-node-0"
	}
	if o.Controllers == nil {
		o.Controllers = DefaultControllers
	}
	if o.HPASyncPeriod == 0 {
		o.HPASyncPeriod = 2 * time.Second
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
}

// Local is a control plane running as processes on 127.0.0.1: etcd,
// kube-apiserver (with the aggregation layer configured), kube-controller-
// manager, kube-scheduler, and kwok managing one fake node. It implements
// Cluster. Its methods are safe for concurrent use.
type Local struct {
	opts     LocalOptions
	workDir  string
	logsDir  string
	stateDir string

	pki        *localPKI
	apiServer  string // https://127.0.0.1:<port>
	kubeconfig string
	restConfig *rest.Config
	client     kubernetes.Interface

	procs    processSet
	stopOnce sync.Once
	stopErr  error
}

var _ Cluster = (*Local)(nil)

// StartLocal builds or finds the binaries, generates the PKI, starts every
// component and returns once the API server is ready, the namespace
// controller machinery works (the default ServiceAccount exists) and the
// kwok node is Ready. On error everything started is stopped and the work
// directory with the logs is kept; the error names it.
func StartLocal(ctx context.Context, opts LocalOptions) (*Local, error) {
	opts.defaults()
	if opts.BinDir == "" {
		dir, err := EnsureBinaries(ctx, opts.BuildScript, opts.Progress)
		if err != nil {
			return nil, fmt.Errorf("start local cluster: %w", err)
		}
		opts.BinDir = dir
	} else if err := checkBinaries(opts.BinDir); err != nil {
		return nil, fmt.Errorf("start local cluster: %w", err)
	}

	l := &Local{opts: opts, workDir: opts.WorkDir}
	if l.workDir == "" {
		dir, err := os.MkdirTemp("", "hpa-signals-e2e-")
		if err != nil {
			return nil, fmt.Errorf("start local cluster: create work dir: %w", err)
		}
		l.workDir = dir
	}
	l.logsDir = filepath.Join(l.workDir, "logs")
	l.stateDir = filepath.Join(l.workDir, "state")
	for _, dir := range []string{l.logsDir, l.stateDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("start local cluster: %w", err)
		}
	}

	startCtx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	if err := l.start(startCtx); err != nil {
		stopErr := l.Stop()
		return nil, fmt.Errorf("start local cluster (logs kept in %s): %w", l.logsDir, errors.Join(err, stopErr))
	}
	return l, nil
}

// Kubeconfig is the path of a cluster-admin kubeconfig.
func (l *Local) Kubeconfig() string { return l.kubeconfig }

// RESTConfig returns a copy of the cluster-admin client config.
func (l *Local) RESTConfig() *rest.Config { return rest.CopyConfig(l.restConfig) }

// Client is a cluster-admin clientset.
func (l *Local) Client() kubernetes.Interface { return l.client }

// LogsDir holds one log file per started process.
func (l *Local) LogsDir() string { return l.logsDir }

// WorkDir holds the logs and the state (PKI, kubeconfigs, etcd data).
func (l *Local) WorkDir() string { return l.workDir }

// APIServerURL is the kube-apiserver's https URL on 127.0.0.1.
func (l *Local) APIServerURL() string { return l.apiServer }

// NodeName is the name of the kwok node pods are scheduled onto.
func (l *Local) NodeName() string { return l.opts.NodeName }

// ClusterCA is the CA that signs the API server's serving certificate and
// the client certificates it accepts.
func (l *Local) ClusterCA() *CA { return l.pki.cluster }

// Processes returns the started processes in start order.
func (l *Local) Processes() []*Process { return l.procs.list() }

// CreateNamespace creates a namespace and waits for its default
// ServiceAccount.
func (l *Local) CreateNamespace(ctx context.Context, name string) error {
	return CreateNamespace(ctx, l.client, name, 30*time.Second)
}

// DeleteNamespace deletes a namespace without waiting.
func (l *Local) DeleteNamespace(ctx context.Context, name string) error {
	return DeleteNamespace(ctx, l.client, name)
}

// ClientKubeconfig writes <state>/kubeconfigs/<name>.kubeconfig
// authenticating with a client certificate for user in groups, signed by
// the cluster CA, and returns its path. Use it to run a local process with
// an identity whose RBAC the scenario controls, e.g. the adapter as
// "system:serviceaccount:<ns>:<sa>" in group "system:serviceaccounts".
func (l *Local) ClientKubeconfig(name, user string, groups ...string) (string, error) {
	kp, err := l.pki.cluster.Issue(CertRequest{CommonName: user, Organizations: groups, Client: true})
	if err != nil {
		return "", fmt.Errorf("client kubeconfig for %q: %w", user, err)
	}
	path := filepath.Join(l.stateDir, "kubeconfigs", name+".kubeconfig")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("client kubeconfig for %q: %w", user, err)
	}
	creds := kubeconfigCredentials{certPEM: kp.CertPEM, keyPEM: kp.KeyPEM}
	if err := writeKubeconfig(path, l.apiServer, l.pki.cluster.CertPEM, user, creds); err != nil {
		return "", fmt.Errorf("client kubeconfig for %q: %w", user, err)
	}
	return path, nil
}

// RSSBytes sums the resident set size of every started process that is
// still running.
func (l *Local) RSSBytes() (uint64, error) {
	var total uint64
	for _, p := range l.procs.list() {
		if exited, _ := p.ExitErr(); exited {
			continue
		}
		rss, err := p.RSSBytes()
		if err != nil {
			return 0, fmt.Errorf("measure RSS of %s: %w", p.Name, err)
		}
		total += rss
	}
	return total, nil
}

// Stop stops every started process, last started first (SIGTERM to its
// process group, SIGKILL after a few seconds). Files are kept. Stop is
// idempotent.
func (l *Local) Stop() error {
	l.stopOnce.Do(func() {
		if err := l.procs.stopAll(); err != nil {
			l.stopErr = fmt.Errorf("stop local cluster: %w", err)
		}
	})
	return l.stopErr
}

// Remove deletes the work directory. Call it after Stop.
func (l *Local) Remove() error {
	if err := os.RemoveAll(l.workDir); err != nil {
		return fmt.Errorf("remove local cluster work dir: %w", err)
	}
	return nil
}

func (l *Local) progress(format string, args ...any) {
	fmt.Fprintf(l.opts.Progress, "local cluster: "+format+"\n", args...)
}
