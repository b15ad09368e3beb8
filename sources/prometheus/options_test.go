package prometheus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptionsValidate(t *testing.T) {
	const plaintext = "--prometheus-bearer-token-file and --prometheus-basic-auth-* would send credentials in clear text to the http:// --prometheus-url; " +
		"use an https:// URL, or set --prometheus-allow-plaintext-credentials if the network path to Prometheus is trusted"
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string // one substring per expected error; none means valid
	}{
		{name: "defaults without prometheus", args: nil},
		{name: "url only", args: []string{"--prometheus-url=http://prometheus:9090"}},
		{name: "https with everything", args: []string{"--prometheus-url=https://p:9090/prefix", "--prometheus-ca-file=" + file,
			"--prometheus-client-cert-file=" + file, "--prometheus-client-key-file=" + file, "--prometheus-bearer-token-file=" + file,
			"--prometheus-header=X-Scope-OrgID=team-a", "--prometheus-header=X-Other=a=b"}},
		{name: "flags without url", args: []string{"--prometheus-bearer-token-file=" + file}, want: []string{"--prometheus-url is empty"}},
		{name: "not http", args: []string{"--prometheus-url=ftp://p"}, want: []string{"must start with http:// or https://"}},
		{name: "no scheme", args: []string{"--prometheus-url=prometheus:9090"}, want: []string{"must start with http:// or https://"}},
		{name: "no host", args: []string{"--prometheus-url=http://"}, want: []string{"has no host"}},
		{name: "password in url", args: []string{"--prometheus-url=http://u:pw@p:9090"}, want: []string{"must not carry a password"}},
		{name: "zero timeout", args: []string{"--prometheus-url=http://p", "--prometheus-query-timeout=0s"}, want: []string{"--prometheus-query-timeout must be positive"}},
		{name: "min window after restart", args: []string{"--prometheus-url=http://p", "--prometheus-min-window-after-restart=5s"}},
		{name: "min window after restart under a second", args: []string{"--prometheus-url=http://p", "--prometheus-min-window-after-restart=500ms"},
			want: []string{"--prometheus-min-window-after-restart must be at least 1s, got 500ms; use e.g. 30s (a rate needs two samples: at least two scrape intervals)"}},
		{name: "cert without key", args: []string{"--prometheus-url=https://p", "--prometheus-client-cert-file=" + file}, want: []string{"set both for mutual TLS or neither"}},
		{name: "key without cert", args: []string{"--prometheus-url=https://p", "--prometheus-client-key-file=" + file}, want: []string{"set both for mutual TLS or neither"}},
		{name: "bearer and basic", args: []string{"--prometheus-url=https://p", "--prometheus-bearer-token-file=" + file,
			"--prometheus-basic-auth-username=u", "--prometheus-basic-auth-password-file=" + file}, want: []string{"keep one of them"}},
		{name: "username without password", args: []string{"--prometheus-url=https://p", "--prometheus-basic-auth-username=u"}, want: []string{"go together"}},
		{name: "missing file", args: []string{"--prometheus-url=https://p", "--prometheus-bearer-token-file=" + filepath.Join(dir, "nope")},
			want: []string{"no such file or directory; point it at a readable file"}},
		{name: "bearer token over http", args: []string{"--prometheus-url=http://p:9090", "--prometheus-bearer-token-file=" + file},
			want: []string{plaintext}},
		{name: "basic auth over http", args: []string{"--prometheus-url=HTTP://p:9090", "--prometheus-basic-auth-username=u", "--prometheus-basic-auth-password-file=" + file},
			want: []string{plaintext}},
		{name: "bearer token over http, allowed", args: []string{"--prometheus-url=http://p:9090", "--prometheus-bearer-token-file=" + file, "--prometheus-allow-plaintext-credentials"}},
		{name: "basic auth over http, allowed", args: []string{"--prometheus-url=http://p:9090", "--prometheus-basic-auth-username=u",
			"--prometheus-basic-auth-password-file=" + file, "--prometheus-allow-plaintext-credentials"}},
		{name: "bearer token over https", args: []string{"--prometheus-url=https://p:9090", "--prometheus-bearer-token-file=" + file}},
		{name: "allow flag without url", args: []string{"--prometheus-allow-plaintext-credentials"}, want: []string{"--prometheus-url is empty"}},
		{name: "tls files with http", args: []string{"--prometheus-url=http://p", "--prometheus-ca-file=" + file}, want: []string{"need an https://"}},
		{name: "header without value", args: []string{"--prometheus-url=http://p", "--prometheus-header=X-A"}, want: []string{"must be Name=Value"}},
		{name: "bad header name", args: []string{"--prometheus-url=http://p", "--prometheus-header=X A=b"}, want: []string{"not a valid header name"}},
		{name: "reserved header", args: []string{"--prometheus-url=http://p", "--prometheus-header=authorization=Bearer x"}, want: []string{"cannot set Authorization"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			errs := o.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d: %q", len(errs), errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q does not contain %q", errs[i], w)
				}
			}
			if strings.Contains(fmt.Sprint(errs), "pw@") {
				t.Error("an error repeats the URL's password")
			}
		})
	}
}

// TestClientCredentials checks the headers each request carries, and that
// a rotated bearer token is used without a restart.
func TestClientCredentials(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1700000000.5,"4"]}]}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := NewOptions()
	o.URL, o.CAFile, o.BearerTokenFile, o.Headers = srv.URL, ca, token, []string{"X-Scope-OrgID=team-a"}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Query(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value != 4 || got[0].Labels["pod"] != "a" || !got[0].Timestamp.Equal(time.UnixMilli(1700000000500)) {
		t.Errorf("samples = %+v, want pod a = 4 at Prometheus' timestamp", got)
	}
	if err := os.WriteFile(token, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, want := range []string{"Bearer one", "Bearer two"} {
		if got := seen[i].Get("Authorization"); got != want {
			t.Errorf("request %d Authorization = %q, want %q", i, got, want)
		}
		if got := seen[i].Get("X-Scope-Orgid"); got != "team-a" {
			t.Errorf("request %d X-Scope-OrgID = %q, want team-a", i, got)
		}
	}
	mu.Unlock()

	basic := NewOptions()
	basic.URL, basic.CAFile, basic.BasicAuthUsername, basic.BasicAuthPasswordFile = srv.URL, ca, "adapter", token
	c, err = NewClient(basic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	r := http.Request{Header: seen[len(seen)-1]}
	mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != "adapter" || p != "two" {
		t.Errorf("basic auth = %q, %q, %v; want adapter, two", u, p, ok)
	}
}

// TestClientReloadsTLSFiles checks that replaced TLS files are used without
// a new client: a CA file that now holds the CA of the server's new
// certificate, and a rotated client key pair, presented at the next
// connection.
func TestClientReloadsTLSFiles(t *testing.T) {
	caA, caB := newTestCA(t, "ca-a"), newTestCA(t, "ca-b")
	var mu sync.Mutex
	serving := caA.issue(t, "127.0.0.1")
	var clients []string // the CN of each request's client certificate
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		clients = append(clients, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		// Every request makes a new connection, so each one shows what a
		// handshake with the files as they are now presents and accepts.
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}`))
	}))
	srv.TLS = &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			return &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS12}, nil
		},
		MinVersion: tls.VersionTLS12,
	}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(path string, data []byte) {
		t.Helper()
		// Replaced, as a Secret volume replaces files.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	writePair := func(c tls.Certificate) {
		t.Helper()
		key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
		write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
	}
	write(caFile, caA.pem)
	writePair(caA.issue(t, "client-before"))

	o := NewOptions()
	o.URL, o.CAFile, o.ClientCertFile, o.ClientKeyFile = srv.URL, caFile, certFile, keyFile
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "x"); err != nil {
		t.Fatalf("query with the first CA and key pair: %v", err)
	}

	mu.Lock()
	serving = caB.issue(t, "127.0.0.1")
	mu.Unlock()
	write(caFile, caB.pem)
	writePair(caA.issue(t, "client-after"))
	if _, err := c.Query(context.Background(), "x"); err != nil {
		t.Fatalf("query after the CA file and key pair were replaced: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"client-before", "client-after"}; !slices.Equal(clients, want) {
		t.Errorf("client certificates presented %q, want %q", clients, want)
	}
}

// testCA is a certificate authority for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a key pair for name (an IP address is also its SAN),
// signed by the CA, for servers and clients.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
