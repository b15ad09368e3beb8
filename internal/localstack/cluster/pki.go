package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is long enough for any test run and short enough that a
// leaked key is worthless.
const certValidity = 24 * time.Hour

// CA is a certificate authority that issues certificates for tests. Its key
// lives only in memory and in the files a caller chooses to write.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM-encoded (what a caBundle or --client-ca-file holds).
	CertPEM []byte
	key     crypto.Signer
}

// KeyPair is a PEM-encoded certificate and its private key (PKCS#8).
type KeyPair struct {
	// CertPEM is the certificate.
	CertPEM []byte
	// KeyPEM is its private key.
	KeyPEM []byte
}

// CertRequest describes a certificate to issue. Client and Server select the
// extended key usages; a certificate may be both.
type CertRequest struct {
	// CommonName is the subject CN: the user name for a client certificate.
	CommonName string
	// Organizations are the subject O values: the groups of a client.
	Organizations []string
	// DNSNames and IPs are the subject alternative names of a server.
	DNSNames []string
	IPs      []net.IP
	// Client adds the client-auth extended key usage.
	Client bool
	// Server adds the server-auth extended key usage.
	Server bool
}

// NewCA creates a self-signed CA with an ECDSA P-256 key.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for CA %q: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA %q: %w", commonName, err)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// Issue signs a new certificate with a fresh ECDSA P-256 key.
func (ca *CA) Issue(req CertRequest) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %q: %w", req.CommonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: req.Organizations},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", req.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key for %q: %w", req.CommonName, err)
	}
	return &KeyPair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// IssueServing issues a serving certificate for the Service service in
// namespace, valid for <service>.<namespace>.svc (the name the aggregator
// verifies), its shorter and longer forms, localhost and 127.0.0.1.
func (ca *CA) IssueServing(service, namespace string) (*KeyPair, error) {
	return ca.Issue(CertRequest{
		CommonName: service + "." + namespace + ".svc",
		DNSNames: []string{
			service + "." + namespace + ".svc",
			service + "." + namespace + ".svc.cluster.local",
			service + "." + namespace,
			service,
			"localhost",
		},
		IPs:    []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Server: true,
	})
}

// WriteFiles writes the certificate and key as PEM files (the key with mode
// 0600), creating parent directories.
func (kp *KeyPair) WriteFiles(certPath, keyPath string) error {
	if err := writeFile(certPath, kp.CertPEM, 0o644); err != nil {
		return err
	}
	return writeFile(keyPath, kp.KeyPEM, 0o600)
}

// ServingCert is a serving certificate for an in-cluster Service together
// with the CA that signed it, e.g. for the adapter and the caBundle of its
// APIServices.
type ServingCert struct {
	KeyPair
	// CABundle is the PEM of the signing CA.
	CABundle []byte
	// CertFile and KeyFile are the written files (set by NewServingCert).
	CertFile, KeyFile string
}

// NewServingCert creates a fresh CA and a serving certificate for
// <service>.<namespace>.svc signed by it, and writes tls.crt, tls.key and
// ca.crt into dir.
func NewServingCert(dir, service, namespace string) (*ServingCert, error) {
	ca, err := NewCA(service + "-ca")
	if err != nil {
		return nil, fmt.Errorf("serving certificate for %s/%s: %w", namespace, service, err)
	}
	kp, err := ca.IssueServing(service, namespace)
	if err != nil {
		return nil, fmt.Errorf("serving certificate for %s/%s: %w", namespace, service, err)
	}
	sc := &ServingCert{
		KeyPair:  *kp,
		CABundle: ca.CertPEM,
		CertFile: filepath.Join(dir, "tls.crt"),
		KeyFile:  filepath.Join(dir, "tls.key"),
	}
	if err := kp.WriteFiles(sc.CertFile, sc.KeyFile); err != nil {
		return nil, fmt.Errorf("serving certificate for %s/%s: %w", namespace, service, err)
	}
	if err := writeFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("serving certificate for %s/%s: %w", namespace, service, err)
	}
	return sc, nil
}

// writeServiceAccountKeys writes an RSA key pair for signing and verifying
// ServiceAccount tokens: sa.key (PKCS#8) and sa.pub (PKIX).
func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode service account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	if err := writeFile(keyPath, pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return err
	}
	return writeFile(pubPath, pemBlock("PUBLIC KEY", pubDER), 0o644)
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
