package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"

	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// options are all of the adapter's flags, one group per subsystem.
type options struct {
	server     *basecmd.AdapterBase
	prometheus *prometheus.Options
	cache      *provider.CacheOptions
	selectors  *provider.SelectorLimits
	logs       *logsapi.LoggingConfiguration

	catalogFile         string
	shutdownGracePeriod time.Duration
	version             bool

	adapterConfig        string
	discoveryInterval    time.Duration
	discoveryMaxAge      time.Duration
	maxDiscoveredMetrics int
}

func newOptions() *options {
	return &options{
		server:              &basecmd.AdapterBase{Name: "hpa-signals"},
		prometheus:          prometheus.NewOptions(),
		cache:               provider.NewCacheOptions(),
		selectors:           provider.NewSelectorLimits(),
		logs:                logsapi.NewLoggingConfiguration(),
		shutdownGracePeriod: 20 * time.Second,

		discoveryInterval:    provider.DefaultDiscoveryInterval,
		maxDiscoveredMetrics: provider.DefaultMaxDiscoveredMetrics,
	}
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	o.server.FlagSet = fs
	o.server.InstallFlags()
	logsapi.AddFlags(o.logs, fs)
	o.addOwnFlags(fs)
}

// addOwnFlags registers the adapter's own flags, the ones the README's
// flags table lists (the API server and logging flags are the libraries').
func (o *options) addOwnFlags(fs *pflag.FlagSet) {
	o.prometheus.AddFlags(fs)
	o.cache.AddFlags(fs)
	o.selectors.AddFlags(fs)
	fs.StringVar(&o.catalogFile, "catalog-file", o.catalogFile,
		"Metric catalog (YAML). Empty serves the built-in presets. The file is watched and reloaded when it changes.")
	fs.DurationVar(&o.shutdownGracePeriod, "shutdown-grace-period", o.shutdownGracePeriod,
		"On SIGTERM, how long in-flight requests may take before the adapter exits. Also bounds each request.")
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")
	fs.StringVar(&o.adapterConfig, "prometheus-adapter-config", o.adapterConfig,
		"prometheus-adapter's configuration file (its --config, its ConfigMap, or Helm values): serve the metrics its rules and externalRules yield, discovered in Prometheus. Watched and reloaded. Without --catalog-file, only these are served.")
	fs.DurationVar(&o.discoveryInterval, "metrics-relist-interval", o.discoveryInterval,
		"How often the metric names of --prometheus-adapter-config rules are discovered again (as prometheus-adapter's flag of that name).")
	fs.DurationVar(&o.discoveryMaxAge, "metrics-max-age", o.discoveryMaxAge,
		"How recent a series' samples must be for discovery to count it (as prometheus-adapter's flag of that name). 0 means --metrics-relist-interval.")
	fs.IntVar(&o.maxDiscoveredMetrics, "max-discovered-metrics", o.maxDiscoveredMetrics,
		"Most metrics the rules of --prometheus-adapter-config may yield; the others are not served.")
}

// validate checks every flag and returns all problems, each saying what to change.
func (o *options) validate() []error {
	var errs []error
	errs = append(errs, o.prometheus.Validate()...)
	errs = append(errs, o.cache.Validate()...)
	errs = append(errs, o.selectors.Validate()...)
	if err := logsapi.Validate(o.logs, nil, nil).ToAggregate(); err != nil {
		errs = append(errs, err)
	}
	if o.shutdownGracePeriod <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-grace-period must be positive, got %s", o.shutdownGracePeriod))
	}
	if o.discoveryInterval <= 0 {
		errs = append(errs, fmt.Errorf("--metrics-relist-interval must be positive, got %s", o.discoveryInterval))
	}
	if o.discoveryMaxAge < 0 {
		errs = append(errs, fmt.Errorf("--metrics-max-age must not be negative, got %s; 0 means --metrics-relist-interval", o.discoveryMaxAge))
	}
	if o.maxDiscoveredMetrics < 1 {
		errs = append(errs, fmt.Errorf("--max-discovered-metrics must be at least 1, got %d", o.maxDiscoveredMetrics))
	}
	if o.adapterConfig != "" && o.prometheus.URL == "" {
		errs = append(errs, errors.New("--prometheus-adapter-config needs --prometheus-url: its rules' metrics are discovered in Prometheus"))
	}
	return errs
}
