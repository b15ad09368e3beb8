// Command kubectl-hpa_signals is hpa-signals' kubectl plugin. Put it on
// $PATH and run it as kubectl hpa-signals:
//
//	kubectl hpa-signals explain [-n NAMESPACE] HPA [-o text|json]
//	kubectl hpa-signals explain -f hpa.yaml [-o text|json]
//
// explain says, for each metric of an HPA, why it has the value it has or
// none: the HPA's conditions and events, the APIService of the metrics
// API, and, through the adapter, the catalog entry, the query, what the
// source holds and the value served, then the first failing step and its
// fix. It talks to the kube-apiserver alone, with the kubeconfig's
// credentials (--kubeconfig, --context, -n as kubectl). Exit status: 0
// when every metric's verdict is ✓, 1 when one is ✗, 2 when it could not
// explain.
package main

import (
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
