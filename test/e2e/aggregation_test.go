//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// fakeGroup is the API group the fake aggregated server serves.
const fakeGroup = "smoke.e2e.hpa-signals.test"

// TestLocalClusterAggregation registers a minimal aggregated API server
// running as a local HTTPS server, the way the adapter will be registered:
// an ExternalName Service pointing at 127.0.0.1, an APIService with a
// caBundle from cluster.NewServingCert, and requests proxied by the
// aggregator with the front-proxy client certificate and X-Remote-* headers.
func TestLocalClusterAggregation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := startLocal(ctx, t)

	const ns, svc = "smoke-aggregation", "fake-api"
	if err := l.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sc, err := cluster.NewServingCert(t.TempDir(), svc, ns)
	if err != nil {
		t.Fatal(err)
	}

	// Aggregated servers trust the requestheader CA the apiserver publishes.
	authCM, err := l.Client().CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("read extension-apiserver-authentication: %v", err)
	}
	frontProxyCAs := x509.NewCertPool()
	if !frontProxyCAs.AppendCertsFromPEM([]byte(authCM.Data["requestheader-client-ca-file"])) {
		t.Fatal("extension-apiserver-authentication has no requestheader-client-ca-file")
	}

	var proxied atomic.Int32
	port := startFakeAggregatedServer(t, sc, frontProxyCAs, &proxied)

	manifest := localAPIService(svc, ns, port, fakeGroup, "v1", 100, sc.CABundle)
	if err := cluster.Apply(ctx, l, manifest); err != nil {
		t.Fatal(err)
	}

	if err := cluster.WaitAPIServiceAvailable(ctx, l, "v1."+fakeGroup, time.Minute); err != nil {
		t.Fatal(err)
	}

	// The proxy may answer 503 for a moment after Available turns True.
	var out string
	err = cluster.WaitFor(ctx, "whoami through the aggregator", 30*time.Second, func(ctx context.Context) (bool, error) {
		out, err = cluster.Kubectl(ctx, l, "", "get", "--raw", "/apis/"+fakeGroup+"/v1/whoami")
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var who struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &who); err != nil {
		t.Fatalf("decode whoami %q: %v", out, err)
	}
	if who.User != "kubernetes-admin" || !slices.Contains(who.Groups, "system:masters") {
		t.Errorf("aggregated server saw user %q groups %v, want kubernetes-admin in system:masters", who.User, who.Groups)
	}
	if proxied.Load() == 0 {
		t.Error("no request reached the fake server with a verified front-proxy client certificate")
	}
}

// startFakeAggregatedServer serves discovery for fakeGroup/v1 and a
// "whoami" path answering with the X-Remote-User and X-Remote-Group the
// aggregator sent, but only to clients with a certificate from
// frontProxyCAs named front-proxy-client. It returns the port.
func startFakeAggregatedServer(t *testing.T, sc *cluster.ServingCert, frontProxyCAs *x509.CertPool, proxied *atomic.Int32) int {
	t.Helper()
	cert, err := tls.X509KeyPair(sc.CertPEM, sc.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/apis/"+fakeGroup+"/v1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"%s/v1","resources":[]}`, fakeGroup)
	})
	mux.HandleFunc("/apis/"+fakeGroup+"/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "front-proxy-client" {
			http.Error(w, "front-proxy client certificate required", http.StatusUnauthorized)
			return
		}
		proxied.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"user":   r.Header.Get("X-Remote-User"),
			"groups": r.Header.Values("X-Remote-Group"),
		})
	})
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    frontProxyCAs,
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			t.Errorf("fake aggregated server: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// localAPIService is an APIService for group/version served by a server on
// 127.0.0.1:port through an ExternalName Service namespace/svc (the
// aggregator dials externalName:port and verifies svc.namespace.svc with
// caBundle).
func localAPIService(svc, namespace string, port int, group, version string, versionPriority int, caBundle []byte) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  type: ExternalName
  externalName: 127.0.0.1
  ports:
  - name: https
    port: %[3]d
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: %[5]s.%[4]s
spec:
  group: %[4]s
  version: %[5]s
  groupPriorityMinimum: 100
  versionPriority: %[6]d
  caBundle: %[7]s
  service:
    name: %[1]s
    namespace: %[2]s
    port: %[3]d
`, svc, namespace, port, group, version, versionPriority, base64.StdEncoding.EncodeToString(caBundle))
}
