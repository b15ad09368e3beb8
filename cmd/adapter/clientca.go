package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The ConfigMap the kube-apiserver publishes its client CAs in, and the key
// of the CAs that sign client certificates (the HPA controller's, kubectl's).
const (
	authConfigMapNamespace = metav1.NamespaceSystem
	authConfigMapName      = "extension-apiserver-authentication"
	clientCAKey            = "client-ca-file"
)

// primedClientCA is the client CAs of kube-system/extension-apiserver-
// authentication, loaded by one read of the ConfigMap when the server starts
// serving, then kept current by k8s.io/apiserver's ConfigMap controller.
//
// k8s.io/apiserver's own set-up uses the controller alone: it loads the CAs
// only once its watch has synced, which client-go checks every 100ms, so
// for about 100ms after the server starts serving it recognises no client
// certificate and refuses every request signed by these CAs as anonymous.
type primedClientCA struct {
	*dynamiccertificates.ConfigMapCAController
	client kubernetes.Interface

	mu        sync.Mutex
	primed    dynamiccertificates.CAContentProvider // nil until RunOnce has read the ConfigMap
	listeners []dynamiccertificates.Listener
}

var (
	_ dynamiccertificates.CAContentProvider = (*primedClientCA)(nil)
	_ dynamiccertificates.ControllerRunner  = (*primedClientCA)(nil)
)

func newPrimedClientCA(client kubernetes.Interface) (*primedClientCA, error) {
	c, err := dynamiccertificates.NewDynamicCAFromConfigMapController("client-ca", authConfigMapNamespace, authConfigMapName, clientCAKey, client)
	if err != nil {
		return nil, err
	}
	return &primedClientCA{ConfigMapCAController: c, client: client}, nil
}

// RunOnce reads the ConfigMap's client CAs. The API server calls it before
// it starts serving, and Run afterwards.
func (p *primedClientCA) RunOnce(ctx context.Context) error {
	cm, err := p.client.CoreV1().ConfigMaps(authConfigMapNamespace).Get(ctx, authConfigMapName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the client CAs of %s/%s: %w", authConfigMapNamespace, authConfigMapName, err)
	}
	bundle := cm.Data[clientCAKey]
	if bundle == "" {
		return fmt.Errorf("%s/%s has no %s", authConfigMapNamespace, authConfigMapName, clientCAKey)
	}
	ca, err := dynamiccertificates.NewStaticCAContent(p.Name(), []byte(bundle))
	if err != nil {
		return fmt.Errorf("client CAs of %s/%s: %w", authConfigMapNamespace, authConfigMapName, err)
	}
	p.mu.Lock()
	p.primed = ca
	listeners := p.listeners
	p.mu.Unlock()
	for _, l := range listeners {
		l.Enqueue()
	}
	return nil
}

// AddListener registers l for the changes the controller sees and for the
// CAs RunOnce reads.
func (p *primedClientCA) AddListener(l dynamiccertificates.Listener) {
	p.mu.Lock()
	p.listeners = append(p.listeners, l)
	p.mu.Unlock()
	p.ConfigMapCAController.AddListener(l)
}

// CurrentCABundleContent is the controller's CAs once it has loaded them,
// the ones RunOnce read until then.
func (p *primedClientCA) CurrentCABundleContent() []byte {
	if b := p.ConfigMapCAController.CurrentCABundleContent(); len(b) > 0 {
		return b
	}
	if ca := p.primedCA(); ca != nil {
		return ca.CurrentCABundleContent()
	}
	return nil
}

// VerifyOptions verifies with the controller's CAs once it has loaded them,
// the ones RunOnce read until then.
func (p *primedClientCA) VerifyOptions() (x509.VerifyOptions, bool) {
	if opts, ok := p.ConfigMapCAController.VerifyOptions(); ok {
		return opts, true
	}
	if ca := p.primedCA(); ca != nil {
		return ca.VerifyOptions()
	}
	return x509.VerifyOptions{}, false
}

func (p *primedClientCA) primedCA() dynamiccertificates.CAContentProvider {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.primed
}

// primeClientCA makes the delegated authentication read the client CAs
// from the cluster with a primedClientCA, where k8s.io/apiserver would use
// its ConfigMap controller alone: only when no --client-ca-file is given,
// the in-cluster lookup is not skipped and a client for it can be built
// (otherwise the library's own handling, warnings included, applies).
func primeClientCA(o *genericoptions.DelegatingAuthenticationOptions) error {
	if o == nil || o.SkipInClusterLookup || o.ClientCert != (genericoptions.ClientCertAuthenticationOptions{}) {
		return nil
	}
	cfg, err := authenticationClientConfig(o.RemoteKubeConfigFile)
	if err != nil {
		return nil // the library reports it, or goes on without client certificates if allowed to
	}
	if o.CustomRoundTripperFn != nil {
		cfg.Wrap(o.CustomRoundTripperFn)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client for the client CAs of %s/%s: %w", authConfigMapNamespace, authConfigMapName, err)
	}
	ca, err := newPrimedClientCA(client)
	if err != nil {
		return err
	}
	o.ClientCert.CAContentProvider = ca
	return nil
}

// authenticationClientConfig is the client configuration k8s.io/apiserver's
// delegated authentication uses: --authentication-kubeconfig, or in-cluster.
func authenticationClientConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}
