package prometheus

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"github.com/spf13/pflag"
	"golang.org/x/net/http/httpguts"
	"k8s.io/utils/clock"
)

// DefaultQueryTimeout bounds one query when --prometheus-query-timeout is
// not given.
const DefaultQueryTimeout = 5 * time.Second

// Options are the flags of the Prometheus client. Create them with
// NewOptions so the defaults are set; the zero value has no timeout and
// fails Validate.
type Options struct {
	// URL is the Prometheus base URL (http or https), e.g.
	// http://prometheus.monitoring.svc:9090. Empty means no Prometheus is
	// configured: Validate accepts it only if no other Prometheus flag is set.
	URL string
	// BearerTokenFile holds a token sent as "Authorization: Bearer". The
	// file is read on every request, so a rotated token is picked up.
	BearerTokenFile string
	// CAFile verifies the server's certificate. Empty uses the system pool.
	// Read again when it changes.
	CAFile string
	// ClientCertFile and ClientKeyFile are the client certificate for mTLS.
	// Both or neither. Read again when they change.
	ClientCertFile string
	ClientKeyFile  string
	// BasicAuthUsername and BasicAuthPasswordFile enable HTTP basic auth.
	// The password file is read on every request.
	BasicAuthUsername     string
	BasicAuthPasswordFile string
	// Headers are extra request headers, each "Name=Value".
	Headers []string
	// AllowPlaintextCredentials lets a bearer token or basic auth password
	// go to an http:// URL, readable by anyone on the network path. False
	// (the default) refuses that combination.
	AllowPlaintextCredentials bool
	// Timeout bounds one query, both the HTTP round trip and Prometheus'
	// own evaluation. Must be positive.
	Timeout time.Duration
	// MinWindowAfterRestart is the shortest window a query is shortened
	// to after a Prometheus restart; a query that would get less is
	// refused (see Client.Query). At least one second.
	MinWindowAfterRestart time.Duration

	// Clock tells the time since Prometheus' first scrape after a
	// restart. Not a flag; nil means the real clock.
	Clock clock.PassiveClock
	// Registerer receives the client's own metrics. Not a flag; nil means
	// they are not exported.
	Registerer promclient.Registerer
}

// NewOptions returns Options with the defaults.
func NewOptions() *Options {
	return &Options{Timeout: DefaultQueryTimeout, MinWindowAfterRestart: DefaultMinWindowAfterRestart}
}

// AddFlags registers the --prometheus-* flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.URL, "prometheus-url", o.URL,
		"Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring.svc:9090. Empty: Prometheus metrics answer 503.")
	fs.StringVar(&o.BearerTokenFile, "prometheus-bearer-token-file", o.BearerTokenFile,
		"File holding a bearer token for Prometheus; re-read on every request. Exclusive with basic auth.")
	fs.StringVar(&o.CAFile, "prometheus-ca-file", o.CAFile,
		"CA bundle (PEM) that verifies Prometheus' serving certificate; re-read when it changes. Empty: the system roots.")
	fs.StringVar(&o.ClientCertFile, "prometheus-client-cert-file", o.ClientCertFile,
		"Client certificate (PEM) for mutual TLS with Prometheus; needs --prometheus-client-key-file.")
	fs.StringVar(&o.ClientKeyFile, "prometheus-client-key-file", o.ClientKeyFile,
		"Client private key (PEM) for mutual TLS with Prometheus; needs --prometheus-client-cert-file.")
	fs.StringVar(&o.BasicAuthUsername, "prometheus-basic-auth-username", o.BasicAuthUsername,
		"Username for HTTP basic auth to Prometheus; needs --prometheus-basic-auth-password-file.")
	fs.StringVar(&o.BasicAuthPasswordFile, "prometheus-basic-auth-password-file", o.BasicAuthPasswordFile,
		"File holding the basic auth password; re-read on every request.")
	fs.StringArrayVar(&o.Headers, "prometheus-header", o.Headers,
		"Extra HTTP header sent to Prometheus as Name=Value (e.g. X-Scope-OrgID=team-a). Repeat for several.")
	fs.BoolVar(&o.AllowPlaintextCredentials, "prometheus-allow-plaintext-credentials", o.AllowPlaintextCredentials,
		"Send the bearer token or basic auth password even over an http:// --prometheus-url (clear text on the network). Default: refused.")
	fs.DurationVar(&o.Timeout, "prometheus-query-timeout", o.Timeout,
		"Longest time one Prometheus query may take, round trip and evaluation.")
	fs.DurationVar(&o.MinWindowAfterRestart, "prometheus-min-window-after-restart", o.MinWindowAfterRestart,
		"After a Prometheus restart, a query whose window reaches back before Prometheus' first scrape runs over the time since that scrape once it is at least this long; until then it fails and the last value is served up to --max-staleness.")
}

// Validate returns every problem with the options, each naming the flag and
// what to change.
func (o *Options) Validate() []error {
	var errs []error
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--prometheus-query-timeout must be positive, got %s; use e.g. 5s", o.Timeout))
	}
	if o.MinWindowAfterRestart < time.Second {
		errs = append(errs, fmt.Errorf("--prometheus-min-window-after-restart must be at least 1s, got %s; use e.g. 30s (a rate needs two samples: at least two scrape intervals)", o.MinWindowAfterRestart))
	}
	if o.URL == "" {
		if o.anySet() {
			errs = append(errs, errors.New("--prometheus-* flags are set but --prometheus-url is empty; set --prometheus-url or drop the other --prometheus-* flags"))
		}
		return errs
	}
	if err := validateURL(o.URL); err != nil {
		errs = append(errs, err)
	}
	if (o.ClientCertFile == "") != (o.ClientKeyFile == "") {
		errs = append(errs, errors.New("--prometheus-client-cert-file and --prometheus-client-key-file go together; set both for mutual TLS or neither"))
	}
	if (o.BasicAuthUsername == "") != (o.BasicAuthPasswordFile == "") {
		errs = append(errs, errors.New("--prometheus-basic-auth-username and --prometheus-basic-auth-password-file go together; set both or neither"))
	}
	if o.BearerTokenFile != "" && (o.BasicAuthUsername != "" || o.BasicAuthPasswordFile != "") {
		errs = append(errs, errors.New("--prometheus-bearer-token-file and --prometheus-basic-auth-* both set the Authorization header; keep one of them"))
	}
	for _, f := range []struct{ flag, path string }{
		{"--prometheus-bearer-token-file", o.BearerTokenFile},
		{"--prometheus-ca-file", o.CAFile},
		{"--prometheus-client-cert-file", o.ClientCertFile},
		{"--prometheus-client-key-file", o.ClientKeyFile},
		{"--prometheus-basic-auth-password-file", o.BasicAuthPasswordFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w; point it at a readable file", f.flag, err))
		}
	}
	if (o.ClientCertFile != "" || o.CAFile != "") && o.plainHTTP() {
		errs = append(errs, errors.New("--prometheus-ca-file and --prometheus-client-*-file need an https:// --prometheus-url"))
	}
	if o.credentialsSet() && o.plainHTTP() && !o.AllowPlaintextCredentials {
		errs = append(errs, errors.New("--prometheus-bearer-token-file and --prometheus-basic-auth-* would send credentials in clear text to the http:// --prometheus-url; "+
			"use an https:// URL, or set --prometheus-allow-plaintext-credentials if the network path to Prometheus is trusted"))
	}
	if _, err := o.headers(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func (o *Options) anySet() bool {
	return o.BearerTokenFile != "" || o.CAFile != "" || o.ClientCertFile != "" || o.ClientKeyFile != "" ||
		o.BasicAuthUsername != "" || o.BasicAuthPasswordFile != "" || len(o.Headers) > 0 || o.AllowPlaintextCredentials
}

// plainHTTP reports whether URL is an http:// URL (any letter case).
func (o *Options) plainHTTP() bool {
	u, err := url.Parse(o.URL)
	return err == nil && u.Scheme == "http"
}

// credentialsSet reports whether a secret goes into the Authorization header.
func (o *Options) credentialsSet() bool {
	return o.BearerTokenFile != "" || o.BasicAuthUsername != "" || o.BasicAuthPasswordFile != ""
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, which may hold a secret: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("--prometheus-url is not a URL (%w); use e.g. http://prometheus:9090", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--prometheus-url must start with http:// or https://, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("--prometheus-url %q has no host; use e.g. http://prometheus:9090", u.Redacted())
	}
	if _, ok := u.User.Password(); ok {
		return errors.New("--prometheus-url must not carry a password; use --prometheus-basic-auth-username and --prometheus-basic-auth-password-file")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--prometheus-url %q must not have a query or fragment; pass headers with --prometheus-header", u.Redacted())
	}
	return nil
}

// headers parses Headers into canonical names and values.
func (o *Options) headers() (http.Header, error) {
	h := http.Header{}
	for _, kv := range o.Headers {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("--prometheus-header %q must be Name=Value", kv)
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("--prometheus-header %q: %q is not a valid header name", kv, name)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("--prometheus-header %q: the value holds characters not allowed in a header", name)
		}
		canonical := http.CanonicalHeaderKey(name)
		if _, reserved := promconfig.ReservedHeaders[canonical]; reserved {
			return nil, fmt.Errorf("--prometheus-header cannot set %s; use the dedicated --prometheus-* flag for auth, the client sets the others", canonical)
		}
		h.Add(canonical, value)
	}
	return h, nil
}
