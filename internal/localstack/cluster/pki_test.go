package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"testing"
)

func TestIssueServingVerifiesAsServiceName(t *testing.T) {
	dir := t.TempDir()
	sc, err := NewServingCert(dir, "hpa-signals", "monitoring")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(sc.CertFile, sc.KeyFile); err != nil {
		t.Fatalf("written key pair does not load: %v", err)
	}
	if sc.CertFile != filepath.Join(dir, "tls.crt") {
		t.Errorf("CertFile = %s", sc.CertFile)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sc.CABundle) {
		t.Fatal("CABundle holds no certificate")
	}
	cert := parseCert(t, sc.CertPEM)
	tests := []struct {
		name    string
		dnsName string
		wantErr bool
	}{
		{name: "aggregator name", dnsName: "hpa-signals.monitoring.svc"},
		{name: "loopback IP", dnsName: "127.0.0.1"},
		{name: "other service", dnsName: "other.monitoring.svc", wantErr: true},
		{name: "other namespace", dnsName: "hpa-signals.default.svc", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cert.Verify(x509.VerifyOptions{
				DNSName:   tt.dnsName,
				Roots:     roots,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if (err != nil) != tt.wantErr {
				t.Errorf("Verify(%q) error = %v, wantErr %v", tt.dnsName, err, tt.wantErr)
			}
		})
	}
}

func TestIssueClientCertCarriesIdentity(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(CertRequest{CommonName: "kubernetes-admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, kp.CertPEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify for client auth: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client cert verifies for server auth, want an error")
	}
	if cert.Subject.CommonName != "kubernetes-admin" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:masters" {
		t.Errorf("subject = %v, want CN=kubernetes-admin O=system:masters", cert.Subject)
	}
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
