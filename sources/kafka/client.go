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
	apiVersions    *apiVersionsCache
	tails          *tailCache // where lagging partitions' consumers would next receive a record

	mu           sync.Mutex
	coordinators map[string]int32 // group -> coordinator broker ID
}

// newCluster builds the client for c, a cluster of a catalog that config
// has defaulted and validated. It reads the SASL password and TLS files now
// and does not dial: an unreachable cluster fails at evaluation, not here.
// clk ages the cached log-start offsets.
func newCluster(ctx context.Context, c config.KafkaCluster, clk clock.PassiveClock) (*cluster, error) {
	t := &kafkago.Transport{
		DialTimeout: c.DialTimeout.Duration,
		IdleTimeout: c.IdleTimeout.Duration,
		MetadataTTL: c.MetadataTTL.Duration,
		ClientID:    c.ClientID,
		Context:     ctx,
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
		requestTimeout: c.RequestTimeout.Duration,
		clock:          clk,
		logStarts:      newLogStartCache(t.MetadataTTL),
		apiVersions:    &apiVersionsCache{ttl: t.MetadataTTL},
		tails:          newTailCache(defaultStateTTL),
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

// orDefault is d, or def when d is not positive: the defaults of Options.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// tlsConfig loads the TLS files with prometheus/common's TLS loader: the
// CA once (kafka-go dials with one fixed *tls.Config; new roots would mean
// verifying certificates by hand), the client key pair at start and again
// on each handshake, so a rotated certificate is used without a restart.
func tlsConfig(c *config.KafkaTLS) (*tls.Config, error) {
	cfg, err := promconfig.NewTLSConfig(&promconfig.TLSConfig{
		CAFile:             c.CAFile,
		CertFile:           c.CertFile,
		KeyFile:            c.KeyFile,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, // an explicit opt-in in the catalog, for tests
		MinVersion:         tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("caFile, certFile, keyFile: %w", err)
	}
	return cfg, nil
}

// saslMechanism reads the password and builds the mechanism; config has
// checked the mechanism, the username and that exactly one password source
// is set. Errors name the file or variable, never the password.
func saslMechanism(c *config.KafkaSASL) (sasl.Mechanism, error) {
	var password string
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			// The *PathError names the file only.
			return nil, fmt.Errorf("read passwordFile: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return nil, fmt.Errorf("environment variable %s (passwordEnv) is not set", c.PasswordEnv)
		}
		password = v
	}
	if password == "" {
		return nil, errors.New("the password is empty")
	}
	if c.Mechanism == config.SASLPlain {
		return plain.Mechanism{Username: c.Username, Password: password}, nil
	}
	algo := scram.SHA256
	if c.Mechanism == config.SASLScramSHA512 {
		algo = scram.SHA512
	}
	m, err := scram.Mechanism(algo, c.Username, password)
	if err != nil {
		return nil, errors.New("scram: the username or password is not valid SASLprep input")
	}
	return m, nil
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
