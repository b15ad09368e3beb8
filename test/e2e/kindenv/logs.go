package kindenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// loggedNamespaces are the namespaces whose pods' logs Stop saves: the
// adapter first, then what it reads.
var loggedNamespaces = []string{adapterNamespace, prometheusNamespace, kafkaNamespace}

// saveLogs writes into LogsDir one file per container of the pods in
// loggedNamespaces (<namespace>_<pod>_<container>.log, plus .previous.log
// for a restarted container), and the cluster's pods and events.
func (e *Env) saveLogs(ctx context.Context) error {
	client := e.kind.Client()
	var errs []error
	for _, ns := range loggedNamespaces {
		errs = append(errs, saveNamespaceLogs(ctx, client, ns, e.logsDir))
	}
	for file, args := range map[string][]string{
		"pods.txt":   {"get", "pods", "--all-namespaces", "-o", "wide"},
		"events.txt": {"get", "events", "--all-namespaces", "--sort-by=.lastTimestamp"},
		"hpa.txt":    {"get", "hpa", "--all-namespaces", "-o", "wide"},
	} {
		out, err := cluster.Kubectl(ctx, e.kind, "", args...)
		if err != nil {
			out += "\n" + err.Error()
		}
		errs = append(errs, os.WriteFile(filepath.Join(e.logsDir, file), []byte(out), 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("save logs in %s: %w", e.logsDir, err)
	}
	return nil
}

func saveNamespaceLogs(ctx context.Context, client kubernetes.Interface, namespace, dir string) error {
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods in %s: %w", namespace, err)
	}
	var errs []error
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			base := filepath.Join(dir, namespace+"_"+p.Name+"_"+cs.Name)
			errs = append(errs, saveContainerLog(ctx, client, &p, cs.Name, false, base+".log"))
			if cs.RestartCount > 0 {
				errs = append(errs, saveContainerLog(ctx, client, &p, cs.Name, true, base+".previous.log"))
			}
		}
	}
	return errors.Join(errs...)
}

func saveContainerLog(ctx context.Context, client kubernetes.Interface, p *corev1.Pod, container string, previous bool, path string) error {
	b, err := client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: container, Previous: previous}).DoRaw(ctx)
	if err != nil {
		// A container that never started has no log; say so in the file.
		b = append(b, []byte("\n(get logs: "+err.Error()+")\n")...)
	}
	return os.WriteFile(path, b, 0o644)
}
