package localstack

import (
	"fmt"
	"strings"
)

// Summary describes what runs: the kubeconfig, logs, Prometheus, Kafka,
// the adapter, each pod process and each load.
func (s *Stack) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubeconfig:  %s\n", s.Kubeconfig())
	fmt.Fprintf(&b, "logs:        %s (cluster: %s)\n", s.logsDir, s.cluster.LogsDir())
	state := "running"
	if !s.prom.Running() {
		state = "stopped"
	}
	fmt.Fprintf(&b, "prometheus:  %s (%s), targets %s\n", s.prom.URL(), state, s.fileSD)
	fmt.Fprintf(&b, "kafka:       %s (topic %s, %d partitions)\n", strings.Join(s.KafkaBrokers(), ","), s.opts.KafkaTopic, s.opts.KafkaPartitions)
	if p := s.AdapterProcess(); p != nil {
		state := "running"
		if exited, code := p.ExitCode(); exited {
			state = fmt.Sprintf("exited %d", code)
		}
		fmt.Fprintf(&b, "adapter:     %s pid %d (%s), ready %s after start, log %s\n", s.AdapterURL(), p.PID(), state, s.AdapterReadyAfter().Round(1e6), p.LogPath)
	}
	pods := s.Pods("", "")
	fmt.Fprintf(&b, "pods:        %d processes\n", len(pods))
	for _, pp := range pods {
		ready := ""
		if !pp.ready {
			ready = " (not ready yet)"
		}
		fmt.Fprintf(&b, "  %s/%s %s %s pid %d deployment=%s service=%s%s\n", pp.Namespace, pp.Pod, pp.Mode, pp.Addr, pp.PID, pp.Deployment, pp.Service, ready)
	}
	b.WriteString(s.loads.summary())
	return b.String()
}
