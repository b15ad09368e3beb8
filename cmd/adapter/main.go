// Command adapter serves custom.metrics.k8s.io (v1beta1, v1beta2) and
// external.metrics.k8s.io (v1beta1) from the hpa-signals metric catalog.
//
//	adapter [flags]                 run the API server
//	adapter check-config FILE       validate a catalog and print its PromQL
//	adapter import-prometheus-adapter FILE
//	                                print a catalog with the metrics of
//	                                prometheus-adapter's rules
//	adapter --version               print the version
package main

import (
	"os"
)

func main() { os.Exit(run(os.Args[1:])) }
