package prometheus

import (
	"crypto/tls"
	"fmt"
	"net/http"

	promconfig "github.com/prometheus/common/config"
)

// userAgent is sent with every request to Prometheus.
const userAgent = "hpa-signals"

// newTransport builds the HTTP round tripper for validated options with
// prometheus/common's HTTPClientConfig, the client configuration Prometheus
// uses for its own scrapes: the bearer token and basic auth password files
// are read on every request, and the CA, client certificate and key files
// again whenever they change, so rotated secrets are used without a
// restart; their contents are never logged. The flags stay ours, checked by
// Options.Validate with messages that name them.
func newTransport(o *Options) (http.RoundTripper, error) {
	headers, err := o.headers()
	if err != nil {
		return nil, err
	}
	cfg := promconfig.HTTPClientConfig{
		TLSConfig: promconfig.TLSConfig{
			CAFile:     o.CAFile,
			CertFile:   o.ClientCertFile,
			KeyFile:    o.ClientKeyFile,
			MinVersion: promconfig.TLSVersion(tls.VersionTLS12),
		},
		FollowRedirects: true,
		EnableHTTP2:     true,
		ProxyConfig:     promconfig.ProxyConfig{ProxyFromEnvironment: true},
	}
	if o.BearerTokenFile != "" {
		cfg.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsFile: o.BearerTokenFile}
	}
	if o.BasicAuthUsername != "" {
		cfg.BasicAuth = &promconfig.BasicAuth{Username: o.BasicAuthUsername, PasswordFile: o.BasicAuthPasswordFile}
	}
	if len(headers) > 0 {
		cfg.HTTPHeaders = &promconfig.Headers{Headers: map[string]promconfig.Header{}}
		for name, values := range headers {
			cfg.HTTPHeaders.Headers[name] = promconfig.Header{Values: values}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configure the HTTP client: %w", err)
	}
	rt, err := promconfig.NewRoundTripperFromConfig(cfg, "prometheus", promconfig.WithUserAgent(userAgent))
	if err != nil {
		return nil, fmt.Errorf("--prometheus-ca-file, --prometheus-client-cert-file, --prometheus-client-key-file: %w", err)
	}
	return rt, nil
}
