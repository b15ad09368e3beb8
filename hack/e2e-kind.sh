#!/usr/bin/env bash
# e2e-kind.sh runs the end-to-end suite on a kind cluster instead of the
# local control plane: it checks the tools, builds the adapter and
# sample-app images, and runs the scenarios with HPA_SIGNALS_E2E_ENV=kind
# (package test/e2e/kindenv creates the cluster from test/kind/cluster.yaml,
# loads the images, installs Prometheus, Kafka and the adapter, and deletes
# the cluster at the end). See test/kind/README.md.
#
# Environment:
#   KIND_CLUSTER_NAME  the cluster's name (default hpa-signals-e2e)
#   KEEP_CLUSTER=1     keep the cluster at the end, and reuse it if it exists
#   E2E_RUN            go test -run pattern (default TestScenarios: every scenario;
#                      the TestLocalCluster* tests need the local control plane)
# Extra arguments are passed to go test.
set -euo pipefail

cd "$(dirname "$0")/.."

min_kind=0.29.0 # test/kind/cluster.yaml pins a node image built for kind v0.29.0

missing=()
need() {
	command -v "$1" >/dev/null 2>&1 || missing+=("  $1: $2")
}
need docker "install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop; kind runs its nodes as containers"
need kind "install kind v$min_kind or later: go install sigs.k8s.io/kind@v$min_kind (or https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
need go "install Go (https://go.dev/dl/), the version in go.mod"
need openssl "install openssl (e.g. apt-get install openssl): manifests/hack/self-signed-cert.sh makes the adapter's serving certificate"
if ((${#missing[@]} > 0)); then
	echo "e2e-kind: missing tools:" >&2
	printf '%s\n' "${missing[@]}" >&2
	exit 1
fi
if ! docker info >/dev/null 2>&1; then
	echo "e2e-kind: the Docker engine is not reachable (docker info failed): start it (e.g. sudo systemctl start docker) and check that this user may use it" >&2
	exit 1
fi
kind_version=$(kind version | awk '{print $2}')
kind_version=${kind_version#v}
if [[ $(printf '%s\n%s\n' "$min_kind" "$kind_version" | sort -V | head -n1) != "$min_kind" ]]; then
	echo "e2e-kind: kind v$kind_version is older than v$min_kind, which built the node image test/kind/cluster.yaml pins: go install sigs.k8s.io/kind@v$min_kind" >&2
	exit 1
fi

export KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-hpa-signals-e2e}"
export KEEP_CLUSTER="${KEEP_CLUSTER:-}"
export HPA_SIGNALS_E2E_ENV=kind

version=$(git describe --tags --always --dirty 2>/dev/null || echo e2e)
echo "e2e-kind: building hpa-signals:e2e ($version) and hpa-signals-sample-app:e2e" >&2
docker build --build-arg VERSION="$version" -t hpa-signals:e2e .
docker build -f examples/sample-app/Dockerfile -t hpa-signals-sample-app:e2e .

echo "e2e-kind: running the scenarios on kind cluster $KIND_CLUSTER_NAME${KEEP_CLUSTER:+ (kept afterwards)}" >&2
go test -tags e2e -count=1 -timeout 60m -v ./test/e2e/ -run "${E2E_RUN:-TestScenarios}" "$@"
