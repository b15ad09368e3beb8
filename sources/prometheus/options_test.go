package prometheus

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptionsValidate(t *testing.T) {
	const plaintext = "--prometheus-bearer-token-file and --prometheus-basic-auth-* would send credentials in clear text to the http:// --prometheus-url; " +
		"use an https:// URL, or set --prometheus-allow-plaintext-credentials if the network path to Prometheus is trusted"
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string // one substring per expected error; none means valid
	}{
		{name: "defaults without prometheus", args: nil},
		{name: "url only", args: []string{"--prometheus-url=http://prometheus:9090"}},
		{name: "https with everything", args: []string{"--prometheus-url=https://p:9090/prefix", "--prometheus-ca-file=" + file,
			"--prometheus-client-cert-file=" + file, "--prometheus-client-key-file=" + file, "--prometheus-bearer-token-file=" + file,
			"--prometheus-header=X-Scope-OrgID=team-a", "--prometheus-header=X-Other=a=b"}},
		{name: "flags without url", args: []string{"--prometheus-bearer-token-file=" + file}, want: []string{"--prometheus-url is empty"}},
		{name: "not http", args: []string{"--prometheus-url=ftp://p"}, want: []string{"must start with http:// or https://"}},
		{name: "no scheme", args: []string{"--prometheus-url=prometheus:9090"}, want: []string{"must start with http:// or https://"}},
		{name: "no host", args: []string{"--prometheus-url=http://"}, want: []string{"has no host"}},
		{name: "password in url", args: []string{"--prometheus-url=http://u:pw@p:9090"}, want: []string{"must not carry a password"}},
		{name: "zero timeout", args: []string{"--prometheus-url=http://p", "--prometheus-query-timeout=0s"}, want: []string{"--prometheus-query-timeout must be positive"}},
		{name: "cert without key", args: []string{"--prometheus-url=https://p", "--prometheus-client-cert-file=" + file}, want: []string{"set both for mutual TLS or neither"}},
		{name: "key without cert", args: []string{"--prometheus-url=https://p", "--prometheus-client-key-file=" + file}, want: []string{"set both for mutual TLS or neither"}},
		{name: "bearer and basic", args: []string{"--prometheus-url=https://p", "--prometheus-bearer-token-file=" + file,
			"--prometheus-basic-auth-username=u", "--prometheus-basic-auth-password-file=" + file}, want: []string{"keep one of them"}},
		{name: "username without password", args: []string{"--prometheus-url=https://p", "--prometheus-basic-auth-username=u"}, want: []string{"go together"}},
		{name: "missing file", args: []string{"--prometheus-url=https://p", "--prometheus-bearer-token-file=" + filepath.Join(dir, "nope")},
			want: []string{"no such file or directory; point it at a readable file"}},
		{name: "bearer token over http", args: []string{"--prometheus-url=http://p:9090", "--prometheus-bearer-token-file=" + file},
			want: []string{plaintext}},
		{name: "basic auth over http", args: []string{"--prometheus-url=HTTP://p:9090", "--prometheus-basic-auth-username=u", "--prometheus-basic-auth-password-file=" + file},
			want: []string{plaintext}},
		{name: "bearer token over http, allowed", args: []string{"--prometheus-url=http://p:9090", "--prometheus-bearer-token-file=" + file, "--prometheus-allow-plaintext-credentials"}},
		{name: "basic auth over http, allowed", args: []string{"--prometheus-url=http://p:9090", "--prometheus-basic-auth-username=u",
			"--prometheus-basic-auth-password-file=" + file, "--prometheus-allow-plaintext-credentials"}},
		{name: "bearer token over https", args: []string{"--prometheus-url=https://p:9090", "--prometheus-bearer-token-file=" + file}},
		{name: "allow flag without url", args: []string{"--prometheus-allow-plaintext-credentials"}, want: []string{"--prometheus-url is empty"}},
		{name: "tls files with http", args: []string{"--prometheus-url=http://p", "--prometheus-ca-file=" + file}, want: []string{"need an https://"}},
		{name: "header without value", args: []string{"--prometheus-url=http://p", "--prometheus-header=X-A"}, want: []string{"must be Name=Value"}},
		{name: "bad header name", args: []string{"--prometheus-url=http://p", "--prometheus-header=X A=b"}, want: []string{"not a valid header name"}},
		{name: "reserved header", args: []string{"--prometheus-url=http://p", "--prometheus-header=authorization=Bearer x"}, want: []string{"cannot set Authorization"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			errs := o.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d: %q", len(errs), errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q does not contain %q", errs[i], w)
				}
			}
			if strings.Contains(fmt.Sprint(errs), "pw@") {
				t.Error("an error repeats the URL's password")
			}
		})
	}
}

// TestClientCredentials checks the headers each request carries, and that
// a rotated bearer token is used without a restart.
func TestClientCredentials(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1700000000.5,"4"]}]}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := NewOptions()
	o.URL, o.CAFile, o.BearerTokenFile, o.Headers = srv.URL, ca, token, []string{"X-Scope-OrgID=team-a"}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Query(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value != 4 || got[0].Labels["pod"] != "a" || !got[0].Timestamp.Equal(time.UnixMilli(1700000000500)) {
		t.Errorf("samples = %+v, want pod a = 4 at Prometheus' timestamp", got)
	}
	if err := os.WriteFile(token, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, want := range []string{"Bearer one", "Bearer two"} {
		if got := seen[i].Get("Authorization"); got != want {
			t.Errorf("request %d Authorization = %q, want %q", i, got, want)
		}
		if got := seen[i].Get("X-Scope-Orgid"); got != "team-a" {
			t.Errorf("request %d X-Scope-OrgID = %q, want team-a", i, got)
		}
	}
	mu.Unlock()

	basic := NewOptions()
	basic.URL, basic.CAFile, basic.BasicAuthUsername, basic.BasicAuthPasswordFile = srv.URL, ca, "adapter", token
	c, err = NewClient(basic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	r := http.Request{Header: seen[len(seen)-1]}
	mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != "adapter" || p != "two" {
		t.Errorf("basic auth = %q, %q, %v; want adapter, two", u, p, ok)
	}
}
