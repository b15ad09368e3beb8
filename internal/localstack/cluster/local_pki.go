package cluster

import (
	"fmt"
	"net"
	"path/filepath"
)

// localPKI is the PKI of a Local cluster. Paths are absolute files under
// <state>/pki.
type localPKI struct {
	cluster    *CA // signs the API server cert and the client certs it accepts
	frontProxy *CA // signs the aggregator's client cert (requestheader CA)

	caFile, frontProxyCAFile        string
	apiServerCert, apiServerKey     string
	frontProxyCert, frontProxyKey   string
	saKey, saPub                    string
	admin, controllerManager, sched *KeyPair
}

// serviceClusterIPRange is the apiserver's Service CIDR; its first address
// is the "kubernetes" Service, which the serving certificate covers.
const (
	serviceClusterIPRange = "10.0.0.0/24"
	kubernetesServiceIP   = "10.0.0.1"
)

// newLocalPKI generates every certificate and key the control plane needs
// into dir.
func newLocalPKI(dir string) (*localPKI, error) {
	p := &localPKI{
		caFile:           filepath.Join(dir, "ca.crt"),
		frontProxyCAFile: filepath.Join(dir, "front-proxy-ca.crt"),
		apiServerCert:    filepath.Join(dir, "apiserver.crt"),
		apiServerKey:     filepath.Join(dir, "apiserver.key"),
		frontProxyCert:   filepath.Join(dir, "front-proxy-client.crt"),
		frontProxyKey:    filepath.Join(dir, "front-proxy-client.key"),
		saKey:            filepath.Join(dir, "sa.key"),
		saPub:            filepath.Join(dir, "sa.pub"),
	}
	var err error
	if p.cluster, err = NewCA("hpa-signals-e2e-ca"); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}
	if p.frontProxy, err = NewCA("hpa-signals-e2e-front-proxy-ca"); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}
	if err := writeFile(p.caFile, p.cluster.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}
	if err := writeFile(p.frontProxyCAFile, p.frontProxy.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}

	issued := []struct {
		ca        *CA
		req       CertRequest
		cert, key string
		into      **KeyPair
	}{
		{ca: p.cluster, cert: p.apiServerCert, key: p.apiServerKey, req: CertRequest{
			CommonName: "kube-apiserver",
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"},
			IPs:    []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(kubernetesServiceIP)},
			Server: true,
		}},
		{ca: p.frontProxy, cert: p.frontProxyCert, key: p.frontProxyKey, req: CertRequest{
			CommonName: "front-proxy-client", Client: true,
		}},
		{ca: p.cluster, into: &p.admin, req: CertRequest{
			CommonName: "kubernetes-admin", Organizations: []string{"system:masters"}, Client: true,
		}},
		{ca: p.cluster, into: &p.controllerManager, req: CertRequest{
			CommonName: "system:kube-controller-manager", Client: true,
		}},
		{ca: p.cluster, into: &p.sched, req: CertRequest{
			CommonName: "system:kube-scheduler", Client: true,
		}},
	}
	for _, is := range issued {
		kp, err := is.ca.Issue(is.req)
		if err != nil {
			return nil, fmt.Errorf("generate PKI: %w", err)
		}
		if is.cert != "" {
			if err := kp.WriteFiles(is.cert, is.key); err != nil {
				return nil, fmt.Errorf("generate PKI: %w", err)
			}
		}
		if is.into != nil {
			*is.into = kp
		}
	}
	if err := writeServiceAccountKeys(p.saKey, p.saPub); err != nil {
		return nil, fmt.Errorf("generate PKI: %w", err)
	}
	return p, nil
}
