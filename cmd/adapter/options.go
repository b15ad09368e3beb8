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
	cache      provider.CacheOptions
	logs       *logsapi.LoggingConfiguration

	catalogFile         string
	shutdownGracePeriod time.Duration
	version             bool
}

func newOptions() *options {
	return &options{
		server:     &basecmd.AdapterBase{Name: "hpa-signals"},
		prometheus: prometheus.NewOptions(),
		cache: provider.CacheOptions{
			RefreshInterval: 10 * time.Second,
			StaleAfter:      time.Minute,
			KeepAlive:       5 * time.Minute,
		},
		logs:                logsapi.NewLoggingConfiguration(),
		shutdownGracePeriod: 20 * time.Second,
	}
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	o.server.FlagSet = fs
	o.server.InstallFlags()
	o.prometheus.AddFlags(fs)
	logsapi.AddFlags(o.logs, fs)

	fs.StringVar(&o.catalogFile, "catalog-file", o.catalogFile,
		"Metric catalog (YAML). Empty serves the built-in presets. The file is watched and reloaded when it changes.")
	fs.DurationVar(&o.cache.RefreshInterval, "refresh-interval", o.cache.RefreshInterval,
		"How often values that HPAs read are refreshed in the background. Keep it below the HPA sync period (15s by default).")
	fs.DurationVar(&o.cache.StaleAfter, "max-staleness", o.cache.StaleAfter,
		"Oldest value served while refreshes fail; past it requests fail and HPAs hold their replica count.")
	fs.DurationVar(&o.cache.KeepAlive, "keep-alive", o.cache.KeepAlive,
		"How long a value keeps being refreshed after it was last read.")
	fs.DurationVar(&o.shutdownGracePeriod, "shutdown-grace-period", o.shutdownGracePeriod,
		"On SIGTERM, how long in-flight requests may take before the adapter exits. Also bounds each request.")
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")
}

// validate checks every flag and returns all problems, each saying what to change.
func (o *options) validate() []error {
	var errs []error
	errs = append(errs, o.prometheus.Validate()...)
	if err := logsapi.Validate(o.logs, nil, nil).ToAggregate(); err != nil {
		errs = append(errs, err)
	}
	c := o.cache
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--refresh-interval", c.RefreshInterval}, {"--max-staleness", c.StaleAfter}, {"--keep-alive", c.KeepAlive}, {"--shutdown-grace-period", o.shutdownGracePeriod}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.flag, d.v))
		}
	}
	if c.RefreshInterval > 0 && c.StaleAfter > 0 && c.StaleAfter <= c.RefreshInterval {
		errs = append(errs, fmt.Errorf("--max-staleness (%s) must be longer than --refresh-interval (%s), or every value goes stale before its refresh; raise --max-staleness to at least %s", c.StaleAfter, c.RefreshInterval, 3*c.RefreshInterval))
	}
	if c.RefreshInterval > 0 && c.KeepAlive > 0 && c.KeepAlive <= c.RefreshInterval {
		errs = append(errs, fmt.Errorf("--keep-alive (%s) must be longer than --refresh-interval (%s), or values expire before they are refreshed", c.KeepAlive, c.RefreshInterval))
	}
	return errs
}
