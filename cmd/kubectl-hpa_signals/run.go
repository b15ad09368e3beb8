package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/hpa-signals/hpa-signals/explain"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `kubectl hpa-signals: hpa-signals' kubectl plugin

Commands:
  explain [-n NAMESPACE] HPA   explain every metric of an HPA: each step of its
                               path with ✓ or ✗, the first failing one and its fix
  explain -f FILE              the same for an HPA manifest that is not applied:
                               what it would read

Flags of explain:
  -o, --output text|json       output format (default text)
  -f, --filename FILE          read the HPA from a manifest (- for stdin)
  --timeout DURATION           give up after this long (default 1m)
  and kubectl's connection flags: --kubeconfig, --context, -n/--namespace, ...

Exit status: 0 when every verdict is ✓, 1 when one is ✗, 2 when explain
could not run.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "--version", "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "explain":
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	o := newExplainOptions()
	fs := pflag.NewFlagSet("kubectl hpa-signals explain", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	o.addFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	if err := o.complete(fs.Args()); err != nil {
		fmt.Fprintf(stderr, "error: %v\n\n%s", err, usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	healthy, err := o.run(ctx, stdout)
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "error:", err)
		return 2
	case !healthy:
		return 1
	}
	return 0
}

// explainOptions are explain's flags.
type explainOptions struct {
	kube     *genericclioptions.ConfigFlags
	output   string
	filename string
	timeout  time.Duration
	name     string
}

func newExplainOptions() *explainOptions {
	return &explainOptions{kube: genericclioptions.NewConfigFlags(true), output: "text", timeout: time.Minute}
}

func (o *explainOptions) addFlags(fs *pflag.FlagSet) {
	o.kube.AddFlags(fs)
	fs.StringVarP(&o.output, "output", "o", o.output, "Output format: text or json.")
	fs.StringVarP(&o.filename, "filename", "f", o.filename, "Explain the HPAs of a manifest that is not applied (- for stdin).")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "Give up after this long.")
}

// complete checks the arguments: an HPA name, or -f, not both.
func (o *explainOptions) complete(args []string) error {
	switch {
	case o.output != "text" && o.output != "json":
		return fmt.Errorf("--output %q: want text or json", o.output)
	case o.filename != "" && len(args) > 0:
		return errors.New("give an HPA name or -f FILE, not both")
	case o.filename == "" && len(args) != 1:
		return errors.New("give one HPA name, or -f FILE")
	case o.timeout <= 0:
		return fmt.Errorf("--timeout must be positive, got %s", o.timeout)
	}
	if len(args) == 1 {
		o.name = args[0]
	}
	return nil
}

// run explains and writes the reports; healthy is false when a verdict is
// ✗.
func (o *explainOptions) run(ctx context.Context, stdout io.Writer) (healthy bool, err error) {
	rc, err := o.kube.ToRESTConfig()
	if err != nil {
		return false, err
	}
	mapper, err := o.kube.ToRESTMapper()
	if err != nil {
		return false, err
	}
	namespace, explicit, err := o.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return false, err
	}
	cluster, err := explain.NewCluster(rc, mapper)
	if err != nil {
		return false, err
	}
	e := &explain.Explainer{Cluster: cluster}
	if o.filename == "" {
		r, err := e.ExplainHPA(ctx, namespace, o.name)
		if err != nil {
			return false, err
		}
		return r.Healthy(), o.write(stdout, r, r)
	}
	m, err := o.readManifest()
	if err != nil {
		return false, err
	}
	reports := make([]*explain.Report, 0, len(m.HPAs))
	healthy = true
	for _, h := range m.HPAs {
		switch {
		case h.Namespace == "":
			h.Namespace = namespace
		case explicit && h.Namespace != namespace:
			return false, fmt.Errorf("HPA %s is in namespace %q, not %q given with -n", h.Name, h.Namespace, namespace)
		}
		r := e.ExplainManifest(ctx, h, m.Selectors)
		healthy = healthy && r.Healthy()
		reports = append(reports, r)
	}
	return healthy, o.write(stdout, reports, reports...)
}

func (o *explainOptions) readManifest() (*explain.Manifest, error) {
	in := os.Stdin
	if o.filename != "-" {
		f, err := os.Open(o.filename)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	m, err := explain.ReadManifest(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.filename, err)
	}
	return m, nil
}

// write writes the reports as text, or asJSON as JSON.
func (o *explainOptions) write(w io.Writer, asJSON any, reports ...*explain.Report) error {
	if o.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(asJSON)
	}
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := r.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}
