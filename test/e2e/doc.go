// Package e2e holds the end-to-end suite: scenarios that run the adapter
// against a real control plane (internal/localstack, or kind through
// package kindenv) and assert what the real HPA controller does with its
// numbers. The tests carry the build tag e2e; run them with
//
//	go test -tags e2e -timeout 60m ./test/e2e/...
//
// The first run builds the control plane into a cache (~13 minutes on 2
// cores, see hack/build-control-plane.sh); later runs start it in seconds.
package e2e
