package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// start brings the components up in dependency order, each checked through
// its API before the next starts.
func (l *Local) start(ctx context.Context) error {
	began := time.Now()
	step := func(what string) { l.progress("%s (%.1fs)", what, time.Since(began).Seconds()) }

	pki, err := newLocalPKI(filepath.Join(l.stateDir, "pki"))
	if err != nil {
		return err
	}
	l.pki = pki
	step("PKI generated")

	// etcd client, etcd peer, kube-apiserver, kube-controller-manager, kube-scheduler.
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	l.apiServer = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	kcmPort, schedPort := ports[3], ports[4]

	kubeconfigs := filepath.Join(l.stateDir, "kubeconfigs")
	l.kubeconfig = filepath.Join(l.workDir, "admin.kubeconfig")
	kcmKubeconfig := filepath.Join(kubeconfigs, "kube-controller-manager.kubeconfig")
	schedKubeconfig := filepath.Join(kubeconfigs, "kube-scheduler.kubeconfig")
	if err := os.MkdirAll(kubeconfigs, 0o755); err != nil {
		return fmt.Errorf("create kubeconfig dir: %w", err)
	}
	for _, kc := range []struct {
		path, user string
		kp         *KeyPair
	}{
		{l.kubeconfig, "kubernetes-admin", pki.admin},
		{kcmKubeconfig, "system:kube-controller-manager", pki.controllerManager},
		{schedKubeconfig, "system:kube-scheduler", pki.sched},
	} {
		creds := kubeconfigCredentials{certPEM: kc.kp.CertPEM, keyPEM: kc.kp.KeyPEM}
		if err := writeKubeconfig(kc.path, l.apiServer, pki.cluster.CertPEM, kc.user, creds); err != nil {
			return err
		}
	}
	if l.restConfig, err = RESTConfigFromKubeconfig(l.kubeconfig); err != nil {
		return err
	}
	l.restConfig.QPS, l.restConfig.Burst = 100, 200
	if l.client, err = kubernetes.NewForConfig(l.restConfig); err != nil {
		return fmt.Errorf("create admin client: %w", err)
	}

	if err := l.startComponent("etcd",
		"--name=default",
		"--data-dir="+filepath.Join(l.stateDir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+etcdPeerURL,
		"--initial-advertise-peer-urls="+etcdPeerURL,
		"--initial-cluster=default="+etcdPeerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return err
	}
	if err := l.waitFor(ctx, "etcd /health", func(ctx context.Context) (bool, error) {
		body, err := httpGet(ctx, http.DefaultClient, etcdURL+"/health")
		return strings.Contains(body, `"health":"true"`), err
	}); err != nil {
		return err
	}
	step("etcd ready")

	if err := l.startComponent("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(l.stateDir, "kube-apiserver"),
		"--tls-cert-file="+pki.apiServerCert,
		"--tls-private-key-file="+pki.apiServerKey,
		"--client-ca-file="+pki.caFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pki.saPub,
		"--service-account-signing-key-file="+pki.saKey,
		"--service-cluster-ip-range="+serviceClusterIPRange,
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=TaintNodesByCondition",
		"--requestheader-client-ca-file="+pki.frontProxyCAFile,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+pki.frontProxyCert,
		"--proxy-client-key-file="+pki.frontProxyKey,
		"--enable-aggregator-routing=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := l.waitFor(ctx, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		body, err := l.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", err
	}); err != nil {
		return err
	}
	// Aggregated API servers (the adapter) read the client and requestheader
	// CAs from this ConfigMap at start-up and fail without it; a post-start
	// hook writes it asynchronously, so /readyz does not imply it exists.
	if err := l.waitFor(ctx, "ConfigMap kube-system/extension-apiserver-authentication", func(ctx context.Context) (bool, error) {
		cm, err := l.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return cm.Data["client-ca-file"] != "" && cm.Data["requestheader-client-ca-file"] != "", nil
	}); err != nil {
		return err
	}
	step("kube-apiserver ready")

	if err := l.startComponent("kube-controller-manager",
		"--kubeconfig="+kcmKubeconfig,
		"--authentication-kubeconfig="+kcmKubeconfig,
		"--authorization-kubeconfig="+kcmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(l.stateDir, "kube-controller-manager"),
		"--controllers="+strings.Join(l.opts.Controllers, ","),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+pki.saKey,
		"--root-ca-file="+pki.caFile,
		"--leader-elect=false",
		"--horizontal-pod-autoscaler-sync-period="+l.opts.HPASyncPeriod.String(),
		"--horizontal-pod-autoscaler-downscale-stabilization=0s",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := l.startComponent("kube-scheduler",
		"--kubeconfig="+schedKubeconfig,
		"--authentication-kubeconfig="+schedKubeconfig,
		"--authorization-kubeconfig="+schedKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(l.stateDir, "kube-scheduler"),
		"--leader-elect=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := l.startComponent("kwok",
		"--kubeconfig="+l.kubeconfig,
		"--config="+stagesFile(l.opts.BinDir),
		"--manage-all-nodes=true",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
	); err != nil {
		return err
	}

	if err := l.createNode(ctx); err != nil {
		return err
	}
	if err := l.waitFor(ctx, "node "+l.opts.NodeName+" Ready (kwok)", func(ctx context.Context) (bool, error) {
		node, err := l.client.CoreV1().Nodes().Get(ctx, l.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	step("kwok node Ready")

	// The serviceaccount controller creating "default" shows the controller
	// manager is up, connected and running its controllers.
	if err := l.waitFor(ctx, "ServiceAccount default/default (kube-controller-manager)", func(ctx context.Context) (bool, error) {
		_, err := l.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	step("kube-controller-manager ready")

	// The scheduler exposes no API object of its own without leader
	// election; its /healthz on the port just picked for it is the check.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer insecure.CloseIdleConnections()
	if err := l.waitFor(ctx, "kube-scheduler /healthz", func(ctx context.Context) (bool, error) {
		body, err := httpGet(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz")
		return body == "ok", err
	}); err != nil {
		return err
	}
	step("kube-scheduler ready; cluster up, kubeconfig " + l.kubeconfig)
	return nil
}

// startComponent starts one control plane binary with the harness' flags
// followed by LocalOptions.ExtraArgs for it.
func (l *Local) startComponent(name string, args ...string) error {
	args = append(args, l.opts.ExtraArgs[name]...)
	p, err := StartProcess(l.logsDir, name, filepath.Join(l.opts.BinDir, name), args, os.Environ())
	if err != nil {
		return err
	}
	l.procs.add(p)
	return nil
}

// waitFor is WaitFor bounded by ReadyTimeout that gives up at once when any
// started process has exited.
func (l *Local) waitFor(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	return WaitFor(ctx, what, l.opts.ReadyTimeout, func(ctx context.Context) (bool, error) {
		if err := l.procs.firstExited(); err != nil {
			return false, StopWaiting(err)
		}
		return cond(ctx)
	})
}

// createNode registers the node kwok manages, with room for many pods.
func (l *Local) createNode(ctx context.Context) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: l.opts.NodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": l.opts.NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if _, err := l.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", l.opts.NodeName, err)
	}
	return nil
}

// httpGet returns the body of a GET that answered 200.
func httpGet(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return string(body), nil
}
