package cluster

import (
	"context"
	"fmt"
	"os"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigCredentials is how a kubeconfig user authenticates: a client
// certificate or a bearer token.
type kubeconfigCredentials struct {
	certPEM, keyPEM []byte
	token           string
}

// writeKubeconfig writes a kubeconfig for server (verified against caPEM)
// with one context named after user.
func writeKubeconfig(path, server string, caPEM []byte, user string, creds kubeconfigCredentials) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: creds.certPEM,
		ClientKeyData:         creds.keyPEM,
		Token:                 creds.token,
	}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	cfg.CurrentContext = user
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// RESTConfigFromKubeconfig loads a client config from a kubeconfig file.
func RESTConfigFromKubeconfig(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// ServiceAccountKubeconfig writes to path a kubeconfig that authenticates as
// the ServiceAccount namespace/name with a token from the TokenRequest API,
// valid for an hour. The ServiceAccount must exist. It works on any Cluster,
// so scenarios can check RBAC as a workload would see it.
func ServiceAccountKubeconfig(ctx context.Context, c Cluster, namespace, name, path string) error {
	expiry := int64(3600)
	tr, err := c.Client().CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	admin := c.RESTConfig()
	caPEM := admin.CAData
	if len(caPEM) == 0 && admin.CAFile != "" {
		if caPEM, err = os.ReadFile(admin.CAFile); err != nil {
			return fmt.Errorf("kubeconfig for ServiceAccount %s/%s: read CA: %w", namespace, name, err)
		}
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	if err := writeKubeconfig(path, admin.Host, caPEM, user, kubeconfigCredentials{token: tr.Status.Token}); err != nil {
		return fmt.Errorf("kubeconfig for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return nil
}
