package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	promconfig "github.com/prometheus/common/config"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"k8s.io/utils/clock"

	"github.com/hpa-signals/hpa-signals/config"
)

// Defaults for zero KafkaCluster settings. They match the config package's
// documented defaults so this package does not depend on defaulting.
const (
	defaultClientID       = "hpa-signals"
	defaultDialTimeout    = 5 * time.Second
	defaultRequestTimeout = 10 * time.Second
	defaultMetadataTTL    = 30 * time.Second
	defaultIdleTimeout    = 5 * time.Minute
)

// cluster is the long-lived connection state for one configured cluster:
// one kafka-go Transport (connection pools, metadata cache) and Client, the
// cached group coordinators and the cached log-start offsets. Safe for
// concurrent use.
type cluster struct {
	name           string
	client         *kafkago.Client
	transport      *kafkago.Transport
	requestTimeout time.Duration
	saslHint       string // appended to connection-closed errors when SASL is on
	clock          clock.PassiveClock
	logStarts      *logStartCache // TTL: the transport's MetadataTTL

	mu           sync.Mutex
	coordinators map[string]int32 // group -> coordinator broker ID
}

// newCluster builds the client for c. It reads the SASL password and TLS
// files now and does not dial: an unreachable cluster fails at evaluation,
// not here. clk ages the cached log-start offsets.
func newCluster(ctx context.Context, c config.KafkaCluster, clk clock.PassiveClock) (*cluster, error) {
	if c.Name == "" {
		return nil, errors.New("kafka: a cluster has no name")
	}
	if len(c.Brokers) == 0 {
		return nil, fmt.Errorf("kafka: cluster %q: no brokers; list bootstrap addresses host:port under brokers", c.Name)
	}
	t := &kafkago.Transport{
		DialTimeout: orDefault(c.DialTimeout.Duration, defaultDialTimeout),
		IdleTimeout: orDefault(c.IdleTimeout.Duration, defaultIdleTimeout),
		MetadataTTL: orDefault(c.MetadataTTL.Duration, defaultMetadataTTL),
		ClientID:    c.ClientID,
		Context:     ctx,
	}
	if t.ClientID == "" {
		t.ClientID = defaultClientID
	}
	if c.TLS != nil {
		cfg, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, fmt.Errorf("kafka: cluster %q: tls: %w", c.Name, err)
		}
		t.TLS = cfg
	}
	cl := &cluster{
		name:           c.Name,
		transport:      t,
		client:         &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: t},
		requestTimeout: orDefault(c.RequestTimeout.Duration, defaultRequestTimeout),
		clock:          clk,
		logStarts:      newLogStartCache(t.MetadataTTL),
		coordinators:   map[string]int32{},
	}
	if c.SASL != nil {
		m, err := saslMechanism(c.SASL)
		if err != nil {
			return nil, fmt.Errorf("kafka: cluster %q: sasl: %w", c.Name, err)
		}
		t.SASL = m
		cl.saslHint = fmt.Sprintf("the broker closed the connection; check SASL mechanism %s and the credentials of user %q", c.SASL.Mechanism, c.SASL.Username)
	}
	return cl, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// tlsConfig loads the TLS files with prometheus/common, as the Prometheus
// source does: the CA once, the client key pair at start and again on
// each handshake, so a rotated certificate is used without a restart.
func tlsConfig(c *config.KafkaTLS) (*tls.Config, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("certFile and keyFile must be set together")
	}
	cfg, err := promconfig.NewTLSConfig(&promconfig.TLSConfig{
		CAFile:             c.CAFile,
		CertFile:           c.CertFile,
		KeyFile:            c.KeyFile,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit opt-in in the catalog
		MinVersion:         tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("caFile, certFile, keyFile: %w", err)
	}
	return cfg, nil
}

// saslMechanism reads the password and builds the mechanism. Errors name
// the file or variable, never the password.
func saslMechanism(c *config.KafkaSASL) (sasl.Mechanism, error) {
	if c.Username == "" {
		return nil, errors.New("username is empty")
	}
	var password string
	switch {
	case c.PasswordFile != "" && c.PasswordEnv != "":
		return nil, errors.New("set passwordFile or passwordEnv, not both")
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			// The *PathError names the file only.
			return nil, fmt.Errorf("read passwordFile: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return nil, fmt.Errorf("environment variable %s (passwordEnv) is not set", c.PasswordEnv)
		}
		password = v
	default:
		return nil, errors.New("no password: set passwordFile or passwordEnv")
	}
	if password == "" {
		return nil, errors.New("the password is empty")
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: c.Username, Password: password}, nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if strings.ToUpper(c.Mechanism) == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, password)
		if err != nil {
			return nil, errors.New("scram: the username or password is not valid SASLprep input")
		}
		return m, nil
	default:
		return nil, fmt.Errorf("mechanism %q is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Mechanism)
	}
}

// wrap adds the operation and cluster to err, and a SASL hint when the
// broker closed the connection (how brokers answer a bad password).
func (c *cluster) wrap(op string, err error) error {
	if c.saslHint != "" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		return fmt.Errorf("kafka: %s on cluster %q: %w (%s)", op, c.name, err, c.saslHint)
	}
	return fmt.Errorf("kafka: %s on cluster %q: %w", op, c.name, err)
}

func (c *cluster) close() {
	c.transport.CloseIdleConnections()
}

// isConnError reports whether err is a connection-level failure, after
// which cached routing (the group coordinator) is not trusted.
func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
