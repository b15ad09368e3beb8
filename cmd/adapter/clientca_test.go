package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
)

// TestPrimeClientCAOnlyForTheInClusterLookup checks primeClientCA replaces
// k8s.io/apiserver's ConfigMap controller only where that controller would
// have been used, with the flags users pass.
func TestPrimeClientCAOnlyForTheInClusterLookup(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster
	cases := []struct {
		name   string
		args   []string
		primed bool
	}{
		{"authentication kubeconfig", []string{"--authentication-kubeconfig=" + kubeconfig}, true},
		{"client CA file", []string{"--authentication-kubeconfig=" + kubeconfig, "--client-ca-file=/etc/ca.crt"}, false},
		{"lookup skipped", []string{"--authentication-kubeconfig=" + kubeconfig, "--authentication-skip-lookup"}, false},
		{"no client for the lookup", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOptions()
			fs := pflag.NewFlagSet("adapter", pflag.ContinueOnError)
			o.addFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			before := o.server.Authentication.ClientCert
			if err := primeClientCA(o.server.Authentication); err != nil {
				t.Fatal(err)
			}
			got := o.server.Authentication.ClientCert
			if !c.primed {
				if got != before {
					t.Fatalf("client certificate options changed to %+v, want them as the flags set them (%+v)", got, before)
				}
				return
			}
			ca, ok := got.CAContentProvider.(*primedClientCA)
			if !ok {
				t.Fatalf("client CA provider is %T, want *primedClientCA", got.CAContentProvider)
			}
			if want := "client-ca::kube-system::extension-apiserver-authentication::client-ca-file"; ca.Name() != want {
				t.Errorf("Name() = %q, want %q", ca.Name(), want)
			}
			if b := ca.CurrentCABundleContent(); len(b) != 0 {
				t.Errorf("CAs before RunOnce: %q, want none", b)
			}
			if _, ok := ca.VerifyOptions(); ok {
				t.Error("VerifyOptions before RunOnce: ok, want not ok")
			}
		})
	}
}
