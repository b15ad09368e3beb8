package localstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// The adapter's identity and Service, as in manifests/base.
const (
	adapterNamespace = "hpa-signals"
	adapterService   = "hpa-signals"
	adapterUser      = "system:serviceaccount:" + adapterNamespace + ":" + adapterService
)

// APIServices are the APIServices manifests/base registers.
var APIServices = []string{
	"v1beta1.custom.metrics.k8s.io",
	"v1beta2.custom.metrics.k8s.io",
	"v1beta1.external.metrics.k8s.io",
	"v1alpha1.explain.hpa-signals.io",
}

// AdapterRefreshInterval and AdapterMaxCacheKeysPerNamespace are two of
// AdapterFlags, for scenarios that compute bounds from them.
const (
	AdapterRefreshInterval          = time.Second
	AdapterMaxCacheKeysPerNamespace = 40
)

// AdapterFlags are the flags the stack gives the adapter besides ports,
// certificates, kubeconfigs and URLs:
//
//   - --refresh-interval=1s: below the local cluster's 2s HPA sync period,
//     as the flag's help asks of any installation.
//   - --max-staleness=10s: an outage turns into errors (and held replica
//     counts) within seconds instead of the default minute, so the failure
//     scenario runs in seconds.
//   - --max-cache-keys-per-namespace=40: well above what the example HPAs
//     and the scenarios of one namespace read at once, and low enough that
//     the key-cap scenario shows the bound within seconds.
//   - --shutdown-grace-period=10s: the lifecycle scenario checks the
//     adapter exits within it.
//   - --authorization-always-allow-paths: lets the stack read /readyz and
//     /metrics without credentials, like a kubelet probe or a scraper.
var AdapterFlags = []string{
	"--refresh-interval=" + AdapterRefreshInterval.String(),
	"--max-staleness=10s",
	"--max-cache-keys-per-namespace=" + strconv.Itoa(AdapterMaxCacheKeysPerNamespace),
	"--shutdown-grace-period=10s",
	"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
	"--v=2",
}

// adapterRunner installs the adapter's manifests and runs the adapter as a
// local process.
type adapterRunner struct {
	s          *Stack
	port       int
	cert       *cluster.ServingCert
	kubeconfig string
	catalog    string
	overlay    string
	client     *http.Client // trusts the serving CA; authenticates as cluster admin when it can

	mu         sync.Mutex
	proc       *cluster.Process
	starts     int
	readyAfter []time.Duration
	extra      []string // flags of RestartAdapterWith, for the next starts
}

// install writes the catalog and the manifests overlay and applies it.
func (a *adapterRunner) install(ctx context.Context) error {
	s := a.s
	port, err := cluster.FreePort()
	if err != nil {
		return err
	}
	a.port = port
	certDir := filepath.Join(s.workDir, "adapter-cert")
	if a.cert, err = cluster.NewServingCert(certDir, adapterService, adapterNamespace); err != nil {
		return err
	}
	if a.client, err = a.httpClient(); err != nil {
		return err
	}
	a.overlay = filepath.Join(s.workDir, "adapter-overlay")
	if err := os.MkdirAll(a.overlay, 0o755); err != nil {
		return fmt.Errorf("write adapter overlay: %w", err)
	}
	a.catalog = filepath.Join(a.overlay, "catalog.yaml")
	catalog, err := catalogYAML(filepath.Join(s.opts.RepoRoot, "manifests", "base", "catalog.yaml"), s.kafka.ListenAddrs())
	if err != nil {
		return err
	}
	if err := os.WriteFile(a.catalog, []byte(catalog), 0o644); err != nil {
		return fmt.Errorf("write catalog: %w", err)
	}
	// kustomize takes only relative paths to other kustomizations.
	base, err := filepath.Rel(a.overlay, filepath.Join(s.opts.RepoRoot, "manifests", "base"))
	if err != nil {
		return fmt.Errorf("write adapter overlay: %w", err)
	}
	kust := overlayKustomization(base, port, a.cert.CABundle)
	if err := os.WriteFile(filepath.Join(a.overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		return fmt.Errorf("write adapter overlay: %w", err)
	}
	if err := cluster.ApplyKustomize(ctx, s.cluster, a.overlay); err != nil {
		return err
	}
	s.progress("applied manifests/base through %s (adapter Service -> 127.0.0.1:%d)", a.overlay, port)

	// The adapter runs as its ServiceAccount, so the manifests' RBAC is
	// what lets it work.
	if l, ok := s.cluster.(interface {
		ClientKubeconfig(name, user string, groups ...string) (string, error)
	}); ok {
		a.kubeconfig, err = l.ClientKubeconfig("hpa-signals-adapter", adapterUser,
			"system:serviceaccounts", "system:serviceaccounts:"+adapterNamespace)
	} else {
		a.kubeconfig = filepath.Join(s.workDir, "hpa-signals-adapter.kubeconfig")
		err = cluster.ServiceAccountKubeconfig(ctx, s.cluster, adapterNamespace, adapterService, a.kubeconfig)
	}
	return err
}

// baseBrokers is the broker list of manifests/base/catalog.yaml.
const baseBrokers = `brokers: ["kafka.kafka.svc:9092"]`

// catalogYAML is the catalog of manifests/base with the local Kafka's
// brokers in place of the in-cluster Service, so the stack serves exactly
// the catalog users install.
func catalogYAML(base string, brokers []string) (string, error) {
	b, err := os.ReadFile(base)
	if err != nil {
		return "", fmt.Errorf("read catalog: %w", err)
	}
	if !strings.Contains(string(b), baseBrokers) {
		return "", fmt.Errorf("catalog %s: no line %q to point at the local Kafka", base, baseBrokers)
	}
	quoted := make([]string, len(brokers))
	for i, b := range brokers {
		quoted[i] = strconv.Quote(b)
	}
	local := "brokers: [" + strings.Join(quoted, ", ") + "]"
	return "# internal/localstack: " + base + " with the local Kafka's brokers.\n" +
		strings.Replace(string(b), baseBrokers, local, 1), nil
}

// overlayKustomization registers a locally running adapter with the
// project's own manifests: manifests/base without the Deployment and PDB
// (the adapter is a local process), the Service turned into an
// ExternalName for 127.0.0.1 on the adapter's port (the aggregator dials
// externalName:port), the APIServices given the CA and that port, and the
// catalog ConfigMap generated from the same file the adapter reads.
func overlayKustomization(base string, port int, caBundle []byte) string {
	ca := base64.StdEncoding.EncodeToString(caBundle)
	return fmt.Sprintf(`# Written by internal/localstack.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %[1]s
configMapGenerator:
- name: hpa-signals-catalog
  namespace: hpa-signals
  behavior: replace
  files:
  - catalog.yaml
  options:
    disableNameSuffixHash: true
patches:
- patch: |-
    $patch: delete
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: hpa-signals
      namespace: hpa-signals
- patch: |-
    $patch: delete
    apiVersion: policy/v1
    kind: PodDisruptionBudget
    metadata:
      name: hpa-signals
      namespace: hpa-signals
- target:
    version: v1
    kind: Service
    name: hpa-signals
  patch: |-
    - op: replace
      path: /spec
      value:
        type: ExternalName
        externalName: 127.0.0.1
        ports:
        - name: https
          port: %[2]d
          protocol: TCP
- target:
    group: apiregistration.k8s.io
    kind: APIService
  patch: |-
    - op: add
      path: /spec/caBundle
      value: %[3]s
    - op: replace
      path: /spec/service/port
      value: %[2]d
`, base, port, ca)
}

// httpClient trusts the adapter's serving CA and presents the cluster
// admin's client certificate when the admin kubeconfig has one.
func (a *adapterRunner) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.cert.CABundle) {
		return nil, errors.New("adapter client: bad CA bundle")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: adapterService + "." + adapterNamespace + ".svc"}
	rc := a.s.cluster.RESTConfig()
	if len(rc.CertData) > 0 && len(rc.KeyData) > 0 {
		cert, err := tls.X509KeyPair(rc.CertData, rc.KeyData)
		if err != nil {
			return nil, fmt.Errorf("adapter client: admin certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second},
	}, nil
}

// start runs a new adapter process, waits for /readyz and for the
// APIServices to be Available.
func (a *adapterRunner) start(ctx context.Context) error {
	s := a.s
	a.mu.Lock()
	if a.proc != nil {
		if exited, _ := a.proc.ExitCode(); !exited {
			a.mu.Unlock()
			return errors.New("start adapter: already running")
		}
	}
	a.starts++
	name := "adapter"
	if a.starts > 1 {
		name = "adapter-" + strconv.Itoa(a.starts)
	}
	args := []string{
		"--secure-port=" + strconv.Itoa(a.port),
		"--bind-address=127.0.0.1",
		"--tls-cert-file=" + a.cert.CertFile,
		"--tls-private-key-file=" + a.cert.KeyFile,
		"--authentication-kubeconfig=" + a.kubeconfig,
		"--authorization-kubeconfig=" + a.kubeconfig,
		"--lister-kubeconfig=" + a.kubeconfig,
		"--catalog-file=" + a.catalog,
		"--prometheus-url=" + s.prom.URL(),
	}
	args = append(args, AdapterFlags...)
	args = append(args, s.opts.AdapterArgs...)
	args = append(args, a.extra...)
	began := time.Now()
	proc, err := cluster.StartProcess(s.logsDir, name, s.adapterBin, args, os.Environ())
	if err != nil {
		a.mu.Unlock()
		return err
	}
	a.proc = proc
	a.mu.Unlock()

	readyz := a.URL() + "/readyz"
	err = cluster.WaitFor(ctx, "adapter /readyz", s.opts.ReadyTimeout, func(ctx context.Context) (bool, error) {
		if exited, err := proc.ExitErr(); exited {
			return false, cluster.StopWaiting(err)
		}
		code, body, err := httpGetStatus(ctx, a.client, readyz)
		if err != nil {
			return false, err
		}
		if code != http.StatusOK {
			return false, fmt.Errorf("/readyz: %d: %s", code, body)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("start adapter (log %s): %w", proc.LogPath, err)
	}
	ready := time.Since(began)
	a.mu.Lock()
	a.readyAfter = append(a.readyAfter, ready)
	a.mu.Unlock()
	s.progress("adapter (pid %d) on https://127.0.0.1:%d ready %s after start", proc.PID(), a.port, ready.Round(time.Millisecond))

	for _, name := range APIServices {
		if err := cluster.WaitAPIServiceAvailable(ctx, s.cluster, name, s.opts.ReadyTimeout); err != nil {
			return fmt.Errorf("start adapter (log %s): %w", proc.LogPath, err)
		}
	}
	// Available=True precedes the proxy's own view of it by a moment.
	for _, gv := range []string{"custom.metrics.k8s.io/v1beta1", "custom.metrics.k8s.io/v1beta2", "external.metrics.k8s.io/v1beta1", "explain.hpa-signals.io/v1alpha1"} {
		err := cluster.WaitFor(ctx, "discovery of "+gv+" through the aggregator", s.opts.ReadyTimeout, func(ctx context.Context) (bool, error) {
			_, err := s.cluster.Client().Discovery().RESTClient().Get().AbsPath("/apis/" + gv).DoRaw(ctx)
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("start adapter (log %s): %w", proc.LogPath, err)
		}
	}
	s.progress("APIServices Available: %s", strings.Join(APIServices, ", "))
	return nil
}

func (a *adapterRunner) stop() error {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop()
}

// URL is the adapter's base URL on 127.0.0.1.
func (a *adapterRunner) URL() string { return "https://127.0.0.1:" + strconv.Itoa(a.port) }

// AdapterURL is the adapter's base URL, https://127.0.0.1:<port>. Its
// certificate is for hpa-signals.hpa-signals.svc: use AdapterHTTPClient.
func (s *Stack) AdapterURL() string { return s.adapter.URL() }

// AdapterMetricsURL is the adapter's own /metrics.
func (s *Stack) AdapterMetricsURL() string { return s.adapter.URL() + "/metrics" }

// AdapterHTTPClient is an HTTP client for AdapterURL: it verifies the
// adapter's certificate and, on a local cluster, authenticates as the
// cluster admin (so the adapter's API answers directly, not only through
// the aggregator).
func (s *Stack) AdapterHTTPClient() *http.Client { return s.adapter.client }

// AdapterProcess is the running (or last) adapter process.
func (s *Stack) AdapterProcess() *cluster.Process {
	s.adapter.mu.Lock()
	defer s.adapter.mu.Unlock()
	return s.adapter.proc
}

// AdapterReadyAfter is how long the last adapter start took from the
// process start to /readyz answering 200.
func (s *Stack) AdapterReadyAfter() time.Duration {
	s.adapter.mu.Lock()
	defer s.adapter.mu.Unlock()
	if len(s.adapter.readyAfter) == 0 {
		return 0
	}
	return s.adapter.readyAfter[len(s.adapter.readyAfter)-1]
}

// ExtendCatalog appends entries (YAML list items of the catalog's metrics
// list, e.g. "- name: x\n  apis: [external]\n  ...") to the catalog file the
// adapter watches. The adapter applies it within about a second; callers
// wait for the entries to be served. Entries the adapter finds invalid are
// logged and the previous catalog keeps serving.
func (s *Stack) ExtendCatalog(entries string) error {
	f, err := os.OpenFile(s.adapter.catalog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("extend catalog: %w", err)
	}
	if _, err := f.WriteString("\n" + strings.TrimSuffix(entries, "\n") + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("extend catalog: %w", err)
	}
	return f.Close()
}

// AdapterOverlay is the kustomize overlay that registered the adapter.
func (s *Stack) AdapterOverlay() string { return s.adapter.overlay }

// StopAdapter stops the adapter process (SIGTERM, SIGKILL after a few
// seconds).
func (s *Stack) StopAdapter() error { return s.adapter.stop() }

// RestartAdapter starts a new adapter process after the last one exited,
// on the same port, and waits as Start does.
func (s *Stack) RestartAdapter(ctx context.Context) error { return s.adapter.start(ctx) }

// RestartAdapterWith stops the adapter and starts it again with extra flags
// after the stack's (e.g. --prometheus-adapter-config=FILE), which later
// restarts keep; with no flags it restarts the adapter as Start ran it.
func (s *Stack) RestartAdapterWith(ctx context.Context, extra ...string) error {
	if err := s.adapter.stop(); err != nil {
		return err
	}
	s.adapter.mu.Lock()
	s.adapter.extra = slices.Clone(extra)
	s.adapter.mu.Unlock()
	return s.adapter.start(ctx)
}

// binary returns prebuilt if set, or builds pkg from the repository into
// <WorkDir>/bin/<name>.
func (s *Stack) binary(ctx context.Context, prebuilt, name, pkg string) (string, error) {
	if prebuilt != "" {
		if _, err := os.Stat(prebuilt); err != nil {
			return "", fmt.Errorf("%s binary: %w", name, err)
		}
		return prebuilt, nil
	}
	out := filepath.Join(s.workDir, "bin", name)
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = s.opts.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	s.progress("built %s in %s", out, time.Since(began).Round(100*time.Millisecond))
	return out, nil
}
