// Package env names what the end-to-end scenarios need around a cluster,
// so the same scenarios run on the local stack and on kind.
package env

import (
	"context"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
	"github.com/hpa-signals/hpa-signals/internal/localstack/cluster"
)

// Env is what the scenarios need around a cluster: the cluster, a load
// generator for the sample workloads, a Kafka producer and a way to take
// Prometheus away. The local stack (package localstack, through a thin wrapper
// in the scenarios) provides it with processes on 127.0.0.1; package
// kindenv with in-cluster workloads on kind. Both serve the catalog of manifests/base, with the
// Kafka cluster named "main" and topic "demo.orders", and run the workloads of
// demo/hpas from the sample-app image.
type Env interface {
	// Cluster is the cluster the adapter is registered in.
	Cluster() cluster.Cluster
	// SetLoad sends totalRPS requests per second in total to /work of the
	// ready pods of namespace/deployment, spread over them like a load
	// balancer, replacing the Deployment's previous load; 0 stops it.
	SetLoad(ctx context.Context, namespace, deployment string, totalRPS float64, shape loadgen.Shape) error
	// ProduceBurst produces n messages to topic and returns when the
	// broker has acknowledged them.
	ProduceBurst(ctx context.Context, topic string, n int) error
	// StopPrometheus makes Prometheus unreachable for the adapter;
	// StartPrometheus brings it back with its data.
	StopPrometheus(ctx context.Context) error
	StartPrometheus(ctx context.Context) error
	// LogsDir holds the logs worth keeping when a scenario fails.
	LogsDir() string
}
