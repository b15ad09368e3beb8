package prometheus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// newTransport builds the HTTP round tripper for validated options. Secret
// files (bearer token, basic auth password) are read on every request and
// the client key pair on every TLS handshake, so rotated secrets are picked
// up without a restart; their content is never logged.
func newTransport(o *Options) (http.RoundTripper, error) {
	headers, err := o.headers()
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read --prometheus-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--prometheus-ca-file %s holds no PEM certificate", o.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	if o.ClientCertFile != "" {
		certFile, keyFile := o.ClientCertFile, o.ClientKeyFile
		// Load once now so a bad pair fails at start, then per handshake.
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("load --prometheus-client-cert-file and --prometheus-client-key-file: %w", err)
		}
		tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("load Prometheus client certificate: %w", err)
			}
			return &c, nil
		}
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          10,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &authTransport{
		next:            base,
		headers:         headers,
		bearerTokenFile: o.BearerTokenFile,
		username:        o.BasicAuthUsername,
		passwordFile:    o.BasicAuthPasswordFile,
	}, nil
}

// authTransport adds the configured headers and credentials to each request.
type authTransport struct {
	next            http.RoundTripper
	headers         http.Header
	bearerTokenFile string
	username        string
	passwordFile    string
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, vs := range t.headers {
		req.Header[k] = append(req.Header[k], vs...)
	}
	req.Header.Set("User-Agent", "hpa-signals")
	switch {
	case t.bearerTokenFile != "":
		token, err := readSecret(t.bearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --prometheus-bearer-token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	case t.username != "":
		password, err := readSecret(t.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("read --prometheus-basic-auth-password-file: %w", err)
		}
		req.SetBasicAuth(t.username, password)
	}
	return t.next.RoundTrip(req)
}

// readSecret reads a secret file, trimming the trailing newline editors add.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New(path + " is empty")
	}
	return s, nil
}
