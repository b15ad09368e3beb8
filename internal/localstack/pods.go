package localstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
)

// SampleAppImage is the image name (without registry or tag) whose pods
// the stack runs as local processes. It is the only entry of the stack's
// workload table: a container of this image runs the sample-app binary
// with the container's own args (so --mode, --workers, --service-time,
// --topic, --group and --rate come from the Deployment), followed by the
// overrides a local process needs, which win because the sample-app's
// flags take the last value:
//
//	--listen=127.0.0.1:<free port>
//	--shutdown-grace-period=3s
//	--drain-delay=0s                (server mode: the stack takes the pod
//	                                 out of its load balancer before SIGTERM)
//	--brokers=<the kfake brokers>   (consumer and share-consumer modes)
const SampleAppImage = "hpa-signals-sample-app"

// RelabeledScrapeAnnotation on a pod, with any value, makes Prometheus
// scrape its process through a job that labels its series
// kubernetes_namespace and kubernetes_pod_name instead of namespace and
// pod, as many installations' relabelling does (see
// promserver.Options.RelabeledFileSD).
const RelabeledScrapeAnnotation = "localstack.hpa-signals.io/relabeled-scrape"

// PodProcess is a local process standing in for a Running, Ready pod.
type PodProcess struct {
	// Namespace and Pod name the pod.
	Namespace, Pod string
	// Deployment owns the pod (from its ReplicaSet); empty if none.
	Deployment string
	// Service is the first Service (by name) in the namespace whose
	// selector matches the pod; empty if none.
	Service string
	// Mode is "server" or "consumer" (either consumer mode: of a consumer
	// group or of a share group).
	Mode string
	// Relabeled reports whether Prometheus scrapes it through the
	// relabelling job (RelabeledScrapeAnnotation).
	Relabeled bool
	// Addr is the process' HTTP address, 127.0.0.1:<port>.
	Addr string
	// PID of the process.
	PID int
	// Started is when the process was started.
	Started time.Time

	proc  *cluster.Process
	ready bool // /readyz answered 200: in the load balancer and in file_sd
}

// podRunner watches pods and runs one sample-app process per Running and
// Ready pod of the sample-app image, registering it with Prometheus
// (file_sd) once it is ready and stopping it when the pod goes away.
type podRunner struct {
	s        *Stack
	factory  informers.SharedInformerFactory
	services listersv1.ServiceLister
	stopCh   chan struct{}
	bg       sync.WaitGroup // readiness checks and stops

	mu      sync.Mutex
	procs   map[string]*PodProcess // by namespace/name
	stopped bool
}

func newPodRunner(s *Stack) *podRunner {
	return &podRunner{s: s, procs: map[string]*PodProcess{}, stopCh: make(chan struct{})}
}

func (r *podRunner) start(ctx context.Context) error {
	r.factory = informers.NewSharedInformerFactory(r.s.cluster.Client(), 0)
	podInformer := r.factory.Core().V1().Pods().Informer()
	r.services = r.factory.Core().V1().Services().Lister()
	_, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.sync(obj) },
		UpdateFunc: func(_, obj any) { r.sync(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				r.remove(p.Namespace+"/"+p.Name, "pod deleted")
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	r.factory.Start(r.stopCh)
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for typ, ok := range r.factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("watch pods: %v cache did not sync", typ)
		}
	}
	return nil
}

// sync starts or stops the process of one pod.
func (r *podRunner) sync(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	container := sampleAppContainer(pod)
	if container == nil {
		return
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || !podReady(pod) {
		r.remove(key, "pod not running and ready")
		return
	}
	r.mu.Lock()
	_, running := r.procs[key]
	stopped := r.stopped
	r.mu.Unlock()
	if running || stopped {
		return
	}
	if err := r.run(pod, container); err != nil {
		r.s.progress("pod %s: %v", key, err)
	}
}

func (r *podRunner) run(pod *corev1.Pod, c *corev1.Container) error {
	port, err := cluster.FreePort()
	if err != nil {
		return err
	}
	pp := &PodProcess{
		Namespace:  pod.Namespace,
		Pod:        pod.Name,
		Deployment: deploymentOf(pod),
		Service:    r.serviceOf(pod),
		Mode:       "server",
		Addr:       "127.0.0.1:" + strconv.Itoa(port),
	}
	_, pp.Relabeled = pod.Annotations[RelabeledScrapeAnnotation]
	args := append([]string(nil), c.Args...)
	for _, a := range args {
		if a == "--mode=consumer" || a == "--mode=share-consumer" {
			pp.Mode = "consumer"
		}
	}
	args = append(args, "--listen="+pp.Addr, "--shutdown-grace-period=3s")
	if pp.Mode == "consumer" {
		args = append(args, "--brokers="+strings.Join(r.s.kafka.ListenAddrs(), ","))
	} else {
		args = append(args, "--drain-delay=0s")
	}
	proc, err := cluster.StartProcess(r.s.logsDir, "pod-"+pod.Namespace+"-"+pod.Name, r.s.sampleAppBin, args, os.Environ())
	if err != nil {
		return err
	}
	pp.proc, pp.PID, pp.Started = proc, proc.PID(), time.Now()
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return proc.Stop()
	}
	r.procs[pod.Namespace+"/"+pod.Name] = pp
	r.mu.Unlock()
	r.bg.Add(1)
	go r.awaitReady(pp)
	return nil
}

// awaitReady polls the process' /readyz, then puts it into the load
// balancer and Prometheus' targets, like a readiness probe would.
func (r *podRunner) awaitReady(pp *PodProcess) {
	defer r.bg.Done()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.stopCh:
			return
		case <-pp.proc.Exited():
			return
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := client.Get("http://" + pp.Addr + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		r.mu.Lock()
		if r.procs[pp.Namespace+"/"+pp.Pod] == pp {
			pp.ready = true
		}
		err = r.writeTargetsLocked()
		r.mu.Unlock()
		if err != nil {
			r.s.progress("pod %s/%s: %v", pp.Namespace, pp.Pod, err)
		}
		return
	}
	r.s.progress("pod %s/%s: the sample-app process did not become ready within 30s; log %s", pp.Namespace, pp.Pod, pp.proc.LogPath)
}

// remove takes the pod's process out of the load balancer and Prometheus'
// targets at once, then stops it in the background.
func (r *podRunner) remove(key, why string) {
	r.mu.Lock()
	pp, ok := r.procs[key]
	if !ok {
		r.mu.Unlock()
		return
	}
	delete(r.procs, key)
	err := r.writeTargetsLocked()
	r.mu.Unlock()
	if err != nil {
		r.s.progress("pod %s: %v", key, err)
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		if err := pp.proc.Stop(); err != nil {
			r.s.progress("pod %s (%s): %v", key, why, err)
		}
	}()
}

// writeTargetsLocked rewrites the file_sd files from the ready processes.
// r.mu must be held.
func (r *podRunner) writeTargetsLocked() error {
	var targets, relabeled []promserver.ScrapeTarget
	for _, pp := range r.procs {
		if !pp.ready {
			continue
		}
		l := map[string]string{"namespace": pp.Namespace, "pod": pp.Pod}
		if pp.Service != "" {
			l["service"] = pp.Service
		}
		if pp.Deployment != "" {
			l["deployment"] = pp.Deployment
		}
		t := promserver.ScrapeTarget{Address: pp.Addr, Labels: l}
		if pp.Relabeled {
			relabeled = append(relabeled, t)
		} else {
			targets = append(targets, t)
		}
	}
	if err := promserver.WriteFileSD(r.s.fileSD, targets); err != nil {
		return err
	}
	return promserver.WriteFileSD(r.s.relabelSD, relabeled)
}

// endpoints are the base URLs (http://127.0.0.1:<port>) of the ready
// server-mode processes of a Deployment, sorted.
func (r *podRunner) endpoints(namespace, deployment string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, pp := range r.procs {
		if pp.ready && pp.Mode == "server" && pp.Namespace == namespace && pp.Deployment == deployment {
			out = append(out, "http://"+pp.Addr)
		}
	}
	sort.Strings(out)
	return out
}

// list returns copies of the processes, sorted by namespace and pod.
func (r *podRunner) list() []PodProcess {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PodProcess, 0, len(r.procs))
	for _, pp := range r.procs {
		c := *pp
		c.proc = nil
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Pod < out[j].Pod
	})
	return out
}

// stop ends the watch and every process and waits for them.
func (r *podRunner) stop() error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	procs := r.procs
	r.procs = map[string]*PodProcess{}
	r.mu.Unlock()
	close(r.stopCh)
	if r.factory != nil {
		r.factory.Shutdown()
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, pp := range procs {
		wg.Go(func() {
			if err := pp.proc.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.bg.Wait()
	return errors.Join(errs...)
}

func (r *podRunner) serviceOf(pod *corev1.Pod) string {
	svcs, err := r.services.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return ""
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, svc := range svcs {
		if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			return svc.Name
		}
	}
	return ""
}

// sampleAppContainer returns the pod's first container of SampleAppImage.
func sampleAppContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		name := c.Image
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		if i := strings.IndexAny(name, ":@"); i >= 0 {
			name = name[:i]
		}
		if name == SampleAppImage {
			return c
		}
	}
	return nil
}

// deploymentOf derives the owning Deployment from the ReplicaSet owner
// (<deployment>-<pod-template-hash>).
func deploymentOf(pod *corev1.Pod) string {
	for _, o := range pod.OwnerReferences {
		if o.Kind == "ReplicaSet" {
			return strings.TrimSuffix(o.Name, "-"+pod.Labels["pod-template-hash"])
		}
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Pods returns the pod processes of a Deployment (all Deployments when
// deployment is empty) in namespace (all when empty).
func (s *Stack) Pods(namespace, deployment string) []PodProcess {
	var out []PodProcess
	for _, pp := range s.pods.list() {
		if (namespace == "" || pp.Namespace == namespace) && (deployment == "" || pp.Deployment == deployment) {
			out = append(out, pp)
		}
	}
	return out
}
