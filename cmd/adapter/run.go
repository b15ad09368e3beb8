package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/config/promadapter"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(args []string) int {
	if len(args) > 0 && args[0] == "check-config" {
		return checkConfig(args[1:], os.Stdout, os.Stderr)
	}
	if len(args) > 0 && args[0] == "import-prometheus-adapter" {
		return importPrometheusAdapter(args[1:], os.Stdout, os.Stderr)
	}
	o := newOptions()
	fs := pflag.NewFlagSet("adapter", pflag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if o.version {
		fmt.Println(version)
		return 0
	}
	if errs := o.validate(); len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(os.Stderr, "invalid flags:", err)
		}
		return 2
	}
	if err := logsapi.ValidateAndApply(o.logs, nil); err != nil {
		fmt.Fprintln(os.Stderr, "invalid logging flags:", err)
		return 2
	}
	if err := serve(genericapiserver.SetupSignalContext(), o); err != nil {
		klog.ErrorS(err, "Adapter stopped")
		return 1
	}
	return 0
}

// serve wires the catalog, the sources, the cache and the provider into the
// API server and runs it until ctx is done, then waits for its helpers.
func serve(ctx context.Context, o *options) error {
	klog.InfoS("Starting hpa-signals", "version", version)

	catalog, err := catalogWatcher(o)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	cat := catalog.Current()

	restConfig, err := o.server.ClientConfig()
	if err != nil {
		return err
	}
	metaClient, err := metadata.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("create metadata client: %w", err)
	}
	pods := provider.NewInformerPods(metaClient)

	reg := legacyregistry.Registerer()
	opts := provider.Options{
		Catalog: catalog.Current,
		Pods:    pods,
		Metrics: provider.NewMetrics(reg),
		Limits:  *o.selectors,
		Redact:  provider.AddressesOf(o.prometheus.URL),
	}
	var rules *config.FileWatcher[promadapter.Config]
	var disc *provider.Discovery
	if o.prometheus.URL != "" {
		o.prometheus.Registerer = reg
		client, err := prometheus.NewClient(o.prometheus)
		if err != nil {
			return fmt.Errorf("create Prometheus client: %w", err)
		}
		opts.Prometheus = client
		if o.adapterConfig != "" {
			if rules, disc, err = discovery(o, restConfig, client, catalog, opts.Metrics); err != nil {
				return err
			}
			opts.Catalog = disc.Catalog
		}
	} else {
		klog.InfoS("No --prometheus-url given: Prometheus metrics answer 503 until the adapter is restarted with one")
	}
	if len(cat.Kafka.Clusters) > 0 {
		src, err := kafka.New(cat.Kafka.Clusters, kafka.Options{Registerer: reg})
		if err != nil {
			return fmt.Errorf("create Kafka clients: %w", err)
		}
		defer src.Close()
		opts.Kafka = src
	}
	o.cache.SetFetchTimeout(o.prometheus.Timeout, cat.Kafka.Clusters)
	opts.Cache = provider.NewCache(*o.cache, nil, opts.Metrics)
	p := provider.New(opts)

	// The pod watch's first list and the first discovery, which readiness
	// waits for, run while the API server is set up (its set-up reads
	// kube-system/extension-apiserver-authentication).
	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { pods.Start(bg.Done()) })
	wg.Go(func() { opts.Cache.Run(bg) })
	wg.Go(func() { catalog.Run(bg) })
	if disc != nil {
		wg.Go(func() { rules.Run(bg) })
		wg.Go(func() { disc.Run(bg) })
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	if err := primeClientCA(o.server.Authentication); err != nil {
		return err
	}
	cfg, err := serverConfig(o.server)
	if err != nil {
		return fmt.Errorf("configure API server: %w", err)
	}
	cfg.GenericConfig.RequestTimeout = o.shutdownGracePeriod
	provider.InstallSelectorCheck(cfg.GenericConfig)
	informers, err := o.server.Informers()
	if err != nil {
		return err
	}
	server, err := provider.NewAPIServer(cfg.Complete(informers), o.server.Name, p)
	if err != nil {
		return fmt.Errorf("create API server: %w", err)
	}
	provider.InstallExplain(server, p)
	checks := []healthz.HealthChecker{healthz.NamedCheck("pod-watch-cache", func(*http.Request) error {
		if !pods.HasSynced() {
			return errors.New("the pod watch cache has not synced yet")
		}
		return nil
	})}
	if ca := clientCA(cfg.GenericConfig.SecureServing); ca != nil {
		// Until the client CAs of kube-system/extension-apiserver-authentication
		// are loaded (read before serving by primeClientCA's RunOnce; if
		// that read failed, by the ConfigMap watch later), client
		// certificates are not recognised and every request is refused
		// with 403, so the adapter is not ready to serve.
		checks = append(checks, healthz.NamedCheck("client-ca", func(*http.Request) error {
			if len(ca.CurrentCABundleContent()) == 0 {
				return errors.New("the client CAs of kube-system/extension-apiserver-authentication have not been loaded yet")
			}
			return nil
		}))
	}
	if disc != nil {
		checks = append(checks, healthz.NamedCheck("prometheus-adapter-discovery", func(*http.Request) error {
			if !disc.HasSynced() {
				return errors.New("the metrics of --prometheus-adapter-config have not been discovered yet")
			}
			return nil
		}))
	}
	if err := server.AddReadyzChecks(checks...); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}

	start := time.Now()
	err = server.PrepareRun().RunWithContext(ctx)
	klog.InfoS("API server stopped", "uptime", time.Since(start).Round(time.Second))
	return err
}

// catalogWatcher watches --catalog-file. With --prometheus-adapter-config
// and no --catalog-file the catalog is empty, so the adapter serves what
// the rules serve, as prometheus-adapter did, and no preset shadows them.
func catalogWatcher(o *options) (*config.Watcher, error) {
	if o.catalogFile == "" && o.adapterConfig != "" {
		c, err := config.Parse([]byte("presets: false\n"))
		return config.Fixed(c), err
	}
	return config.NewWatcher(o.catalogFile)
}

// discovery watches --prometheus-adapter-config and returns the discovery
// of its rules' metrics, wired to both files' reloads.
func discovery(o *options, restConfig *rest.Config, client *prometheus.Client, catalog *config.Watcher, m *provider.Metrics) (*config.FileWatcher[promadapter.Config], *provider.Discovery, error) {
	rules, err := config.WatchFile("prometheus-adapter config", o.adapterConfig, promadapter.Parse)
	if err != nil {
		return nil, nil, fmt.Errorf("load --prometheus-adapter-config: %w", err)
	}
	for _, n := range rules.Current().Notes {
		klog.InfoS("Note on --prometheus-adapter-config", "file", o.adapterConfig, "note", n.String())
	}
	mapper, err := provider.ClusterMapper(restConfig)
	if err != nil {
		return nil, nil, err
	}
	d := provider.NewDiscovery(provider.DiscoveryOptions{
		Rules:      rules.Current,
		Catalog:    catalog.Current,
		Prometheus: client,
		Mapper:     mapper,
		Interval:   o.discoveryInterval,
		MaxAge:     o.discoveryMaxAge,
		MaxMetrics: o.maxDiscoveredMetrics,
		Metrics:    m,
	})
	catalog.OnChange = func(*config.Catalog) { d.CatalogChanged() }
	rules.OnChange = func(*promadapter.Config) { d.RulesChanged() }
	return rules, d, nil
}

// checkConfig validates a catalog file and prints each entry with the
// PromQL it produces.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: adapter check-config FILE")
		return 2
	}
	cat, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s is invalid:\n%v\n", args[0], err)
		return 1
	}
	if err := printCatalog(stdout, cat); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// clientCA is the CA bundle the server verifies client certificates with,
// or nil when it verifies none.
func clientCA(serving *genericapiserver.SecureServingInfo) dynamiccertificates.CAContentProvider {
	if serving == nil {
		return nil
	}
	return serving.ClientCA
}
