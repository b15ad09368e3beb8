package prometheus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
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
	// The CA is read once; the client key pair at start (a bad pair fails
	// here) and again on each handshake, as for Kafka.
	tlsConfig, err := promconfig.NewTLSConfig(&promconfig.TLSConfig{
		CAFile:     o.CAFile,
		CertFile:   o.ClientCertFile,
		KeyFile:    o.ClientKeyFile,
		MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("--prometheus-ca-file, --prometheus-client-cert-file, --prometheus-client-key-file: %w", err)
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
