package main

import (
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
}

func newOptions() *options {
	return &options{
		server:              &basecmd.AdapterBase{Name: "hpa-signals"},
		prometheus:          prometheus.NewOptions(),
		cache:               provider.NewCacheOptions(),
		selectors:           provider.NewSelectorLimits(),
		logs:                logsapi.NewLoggingConfiguration(),
		shutdownGracePeriod: 20 * time.Second,
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
	return errs
}
