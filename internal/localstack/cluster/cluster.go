// Package cluster owns the Kubernetes clusters the local stack, the demo
// and the end-to-end suite run against: the Cluster interface they are
// written against, a Local implementation that starts a real control
// plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok for fake nodes and Running pods) as processes on 127.0.0.1, the PKI
// it needs, and the small helpers every cluster user shares (kubectl
// apply, polling with deadlines, free ports, ServiceAccount kubeconfigs).
//
// Everything is cluster-agnostic except Local; package kindenv implements
// Cluster on kind, so the same scenarios run on both.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cluster is what a scenario needs from a Kubernetes cluster. Implementations
// are safe for concurrent use after they are started, except Stop.
type Cluster interface {
	// Kubeconfig is the path of a kubeconfig file with cluster-admin rights.
	Kubeconfig() string
	// RESTConfig returns a fresh copy of the cluster-admin client config.
	RESTConfig() *rest.Config
	// Client is a cluster-admin client-go clientset.
	Client() kubernetes.Interface
	// CreateNamespace creates a namespace and waits until its default
	// ServiceAccount exists (pods are refused before that).
	CreateNamespace(ctx context.Context, name string) error
	// DeleteNamespace deletes a namespace without waiting for it to be gone.
	// A namespace that does not exist is not an error.
	DeleteNamespace(ctx context.Context, name string) error
	// LogsDir is the directory holding the logs of everything the cluster
	// started; it outlives Stop when the run failed.
	LogsDir() string
	// Stop stops everything the cluster started. It is idempotent.
	Stop() error
}

// CreateNamespace implements Cluster.CreateNamespace for any clientset:
// it creates the namespace and waits up to timeout for its default
// ServiceAccount.
func CreateNamespace(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %q: %w", name, err)
	}
	err := WaitFor(ctx, fmt.Sprintf("default ServiceAccount in namespace %q", name), timeout,
		func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		})
	if err != nil {
		return fmt.Errorf("create namespace %q: %w", name, err)
	}
	return nil
}

// DeleteNamespace implements Cluster.DeleteNamespace for any clientset.
func DeleteNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	err := client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %q: %w", name, err)
	}
	return nil
}

// errStopWaiting marks an error returned by a WaitFor condition as final.
type errStopWaiting struct{ err error }

func (e errStopWaiting) Error() string { return e.err.Error() }
func (e errStopWaiting) Unwrap() error { return e.err }

// StopWaiting wraps err so that WaitFor returns it at once instead of
// treating it as transient and polling on.
func StopWaiting(err error) error { return errStopWaiting{err: err} }

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 100 * time.Millisecond

// WaitFor polls cond every 100 ms until it reports true, ctx is done, or
// timeout passes. cond gets a context bounded by timeout. Errors from cond are treated as transient (the last one is
// reported on timeout) unless wrapped with StopWaiting. what describes the
// awaited state for the error message ("3 ready pods in ns/app"). A timeout
// error wraps context.DeadlineExceeded.
func WaitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if err != nil {
			var stop errStopWaiting
			if errors.As(err, &stop) {
				return fmt.Errorf("wait for %s: %w", what, stop.err)
			}
			// An error caused by the deadline itself says nothing about
			// the awaited state; keep the one before it.
			if ctx.Err() == nil || lastErr == nil {
				lastErr = err
			}
		} else if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("wait for %s: %w (last error: %w)", what, ctx.Err(), lastErr)
			}
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-ticker.C:
		}
	}
}
