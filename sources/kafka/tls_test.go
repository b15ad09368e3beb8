package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hpa-signals/hpa-signals/config"
)

// testCA issues certificates for the TLS test.
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

// issue returns a certificate for 127.0.0.1 usable by servers and clients.
func (ca *testCA) issue(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writeKeyPair writes cert and key PEM files and returns their paths.
func writeKeyPair(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLS reads lag from brokers that require TLS with client
// certificates: the right CA and certificate give the exact lag; a wrong
// CA, a serverName the certificate does not name or a missing client
// certificate fail with the cause; insecureSkipVerify skips verifying the
// brokers' certificate.
func TestTLS(t *testing.T) { forEachMode(t, testTLS) }

func testTLS(t *testing.T, mode brokerMode) {
	ca := newTestCA(t, "kafka-test-ca")
	clients := x509.NewCertPool()
	clients.AddCert(ca.cert)
	server := &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "broker")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS12,
	}
	b := newBroker(t, mode, kfake.TLS(server))

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	clientCert := ca.issue(t, "hpa-signals")
	certFile, keyFile := writeKeyPair(t, dir, "client", clientCert)
	other := newTestCA(t, "someone-else")
	otherCAFile := filepath.Join(dir, "other-ca.pem")
	if err := os.WriteFile(otherCAFile, other.pem, 0o600); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	b.seedClient(kgo.DialTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}))
	b.createTopic("orders", 3)
	b.produce("orders", 0, 5, nil)
	b.produce("orders", 2, 2, nil)
	b.commit("billing", map[string]map[int32]int64{"orders": {0: 1, 1: 0, 2: 2}})

	q := fromCatalog(t, Query{Cluster: "main", Group: "billing", Topics: []string{"orders"}})
	cluster := func(tlsCfg *config.KafkaTLS) config.KafkaCluster {
		c := b.clusterConfig("main")
		c.TLS = tlsCfg
		c.DialTimeout = config.Duration{Duration: 2 * time.Second}
		c.RequestTimeout = config.Duration{Duration: 5 * time.Second}
		return c
	}

	for _, tc := range []struct {
		name string
		tls  *config.KafkaTLS
	}{
		{"CA and client certificate", &config.KafkaTLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}},
		{"serverName the brokers' certificate names", &config.KafkaTLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "127.0.0.1"}},
		// Tests only: no verification of the brokers' certificate at all.
		{"insecureSkipVerify accepts a CA that did not sign it", &config.KafkaTLS{CAFile: otherCAFile, CertFile: certFile, KeyFile: keyFile, InsecureSkipVerify: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, []config.KafkaCluster{cluster(tc.tls)}, Options{})
			r, err := s.Evaluate(context.Background(), q)
			if err != nil || r.Value != 4 {
				t.Fatalf("lag over TLS = %v, %v; want 4 (5-1 on partition 0, 0 on 1 and 2)", r.Value, err)
			}
		})
	}

	for _, tc := range []struct {
		name string
		tls  *config.KafkaTLS
		want string
	}{
		{"CA that did not sign the brokers' certificates", &config.KafkaTLS{CAFile: otherCAFile, CertFile: certFile, KeyFile: keyFile}, "certificate"},
		{"no client certificate", &config.KafkaTLS{CAFile: caFile}, "certificate required"},
		{"serverName the brokers' certificate does not name", &config.KafkaTLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "kafka.example.com"}, "kafka.example.com"},
		{"plaintext against TLS brokers", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, []config.KafkaCluster{cluster(tc.tls)}, Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := s.Evaluate(ctx, q)
			if err == nil {
				t.Fatalf("Evaluate = %v, want an error", r.Value)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), `"main"`) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name the cluster and the cause (%q)", err, tc.want)
			}
		})
	}
}

// TestTLSReloadsTheClientCertificate checks that a rotated client key pair
// is presented at the next handshake without a restart, as for Prometheus.
func TestTLSReloadsTheClientCertificate(t *testing.T) {
	ca := newTestCA(t, "kafka-test-ca")
	dir := t.TempDir()
	certFile, keyFile := writeKeyPair(t, dir, "client", ca.issue(t, "before"))
	cfg, err := tlsConfig(&config.KafkaTLS{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	presented := func() string {
		t.Helper()
		c, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if got := presented(); got != "before" {
		t.Fatalf("client certificate %q, want the one on disk (before)", got)
	}
	writeKeyPair(t, dir, "client", ca.issue(t, "after"))
	if got := presented(); got != "after" {
		t.Errorf("after rotation the client certificate is %q, want the new one (after)", got)
	}
}
