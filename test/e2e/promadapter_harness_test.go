//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// adapterProc is one metrics adapter (hpa-signals or prometheus-adapter)
// running as a process on 127.0.0.1, asked directly, not through the
// aggregator, with the cluster admin's client certificate.
type adapterProc struct {
	name     string
	url      string
	port     int
	caBundle []byte // the CA of its serving certificate, for an APIService
	client   *http.Client
	proc     *cluster.Process
	started  time.Time // just before the exec
}

// startAdapterProc runs binary with the serving and delegation flags both
// adapters share plus args, and waits until /readyz answers 200.
func startAdapterProc(ctx context.Context, t testing.TB, l *cluster.Local, name, binary string, args ...string) *adapterProc {
	t.Helper()
	a := launchAdapterProc(t, l, name, binary, os.Environ(), args...)
	err := cluster.WaitFor(ctx, name+" /readyz", 2*time.Minute, func(ctx context.Context) (bool, error) {
		if exited, err := a.proc.ExitErr(); exited {
			return false, cluster.StopWaiting(fmt.Errorf("%s exited: %w", name, err))
		}
		code, body := a.get(ctx, "/readyz")
		if code != http.StatusOK {
			return false, fmt.Errorf("/readyz: %d %s", code, body)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("start %s (log %s): %v", name, a.proc.LogPath, err)
	}
	return a
}

// launchAdapterProc runs binary with env, the serving and delegation flags
// both adapters share plus args, and returns without waiting for it; the
// test's cleanup stops it.
func launchAdapterProc(t testing.TB, l *cluster.Local, name, binary string, env []string, args ...string) *adapterProc {
	t.Helper()
	dir := t.TempDir()
	port, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := cluster.NewServingCert(dir, name, "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert.CABundle)
	rc := l.RESTConfig()
	admin, err := tls.X509KeyPair(rc.CertData, rc.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, ServerName: name + ".test.svc", Certificates: []tls.Certificate{admin},
	}}}
	all := append([]string{
		"--secure-port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--tls-cert-file=" + cert.CertFile,
		"--tls-private-key-file=" + cert.KeyFile,
		"--authentication-kubeconfig=" + l.Kubeconfig(),
		"--authorization-kubeconfig=" + l.Kubeconfig(),
		"--lister-kubeconfig=" + l.Kubeconfig(),
		"--v=2",
	}, args...)
	started := time.Now()
	proc, err := cluster.StartProcess(dir, name, binary, all, env)
	if err != nil {
		t.Fatal(err)
	}
	a := &adapterProc{name: name, url: "https://127.0.0.1:" + strconv.Itoa(port), port: port, caBundle: cert.CABundle, client: client, proc: proc, started: started}
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Logf("stop %s: %v", name, err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(proc.LogPath); err == nil {
				t.Logf("%s log (last 6000 bytes):\n%s", name, tail(b, 6000))
			}
		}
	})
	return a
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// as returns the adapter asked with the bearer token instead of the admin's
// client certificate ("" for no credentials at all), as a user who
// port-forwards to its Service and curls it would ask.
func (a *adapterProc) as(token string) *adapterProc {
	tr := a.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = nil
	var rt http.RoundTripper = tr
	if token != "" {
		rt = bearer{token: token, next: tr}
	}
	b := *a
	b.client = &http.Client{Timeout: a.client.Timeout, Transport: rt}
	return &b
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// get returns the status code and body of a GET of path.
func (a *adapterProc) get(ctx context.Context, path string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+path, nil)
	if err != nil {
		return 0, []byte(err.Error())
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// answer is what an adapter answered to a metrics API request, reduced to
// what an HPA reads: the status code and, on success, the value per
// object (custom metrics), per label set (external metrics) or the metric
// names (discovery).
type answer struct {
	code   int
	values map[string]int64 // key -> milli value
	names  []string         // discovery: sorted "resource/metric" (namespaced marked with *)
	body   string
}

func (a answer) String() string {
	if a.code != http.StatusOK {
		return strconv.Itoa(a.code)
	}
	if a.names != nil {
		return "200 [" + strings.Join(a.names, " ") + "]"
	}
	keys := make([]string, 0, len(a.values))
	for k := range a.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + resource.NewMilliQuantity(a.values[k], resource.DecimalSI).String()
	}
	return "200 {" + strings.Join(parts, " ") + "}"
}

// sameAs reports whether a and b answer alike: the same status and, on
// success, the same names or the same objects with values at most one
// milli-unit apart (prometheus-adapter truncates to milli-units,
// hpa-signals rounds; evaluation at two moments adds float noise).
func (a answer) sameAs(b answer) bool {
	if a.code != b.code || !slices.Equal(a.names, b.names) || len(a.values) != len(b.values) {
		return false
	}
	for k, v := range a.values {
		w, ok := b.values[k]
		if !ok || v-w > 1 || w-v > 1 {
			return false
		}
	}
	return true
}

// ask sends path to the adapter and reduces the answer.
func (a *adapterProc) ask(ctx context.Context, t testing.TB, path string) answer {
	t.Helper()
	code, body := a.get(ctx, path)
	ans := answer{code: code, body: string(body)}
	if code != http.StatusOK {
		return ans
	}
	var doc struct {
		Kind      string
		Resources []struct {
			Name       string
			Namespaced bool
		}
		Items []struct {
			DescribedObject struct{ Name string }
			MetricLabels    map[string]string
			Value           resource.Quantity
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s %s: %v\n%s", a.name, path, err, body)
	}
	switch doc.Kind {
	case "APIResourceList":
		ans.names = []string{}
		for _, r := range doc.Resources {
			n := r.Name
			if r.Namespaced {
				n += "*"
			}
			ans.names = append(ans.names, n)
		}
		slices.Sort(ans.names)
	default:
		ans.values = map[string]int64{}
		for _, it := range doc.Items {
			key := it.DescribedObject.Name
			if doc.Kind == "ExternalMetricValueList" {
				key = labelString(it.MetricLabels)
			}
			ans.values[key] = it.Value.MilliValue()
		}
	}
	return ans
}

func labelString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+":"+v)
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// createPods creates bare pods (labels app=<app>) in namespace; the
// adapters list them, nothing runs them.
func createPods(ctx context.Context, t testing.TB, l *cluster.Local, namespace, app string, names ...string) {
	t.Helper()
	for _, n := range names {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: namespace, Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
		}
		if _, err := l.Client().CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s/%s: %v", namespace, n, err)
		}
	}
}

// buildAdapter builds hpa-signals' adapter into dir, with go build's flags.
func buildAdapter(ctx context.Context, t testing.TB, dir string, flags ...string) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hpa-signals-adapter")
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"build"}, flags...), "-o", out, "./cmd/adapter")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the adapter: %v\n%s", err, b)
	}
	return out
}
