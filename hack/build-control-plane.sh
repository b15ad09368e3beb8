#!/usr/bin/env bash
# build-control-plane.sh builds the binaries of a local Kubernetes control
# plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok)
# from the Go module proxy into a cache directory outside the repository,
# keyed by versions. A current cache (matching stamp file) skips the build.
#
# Kubernetes can't be built with `go install ...@version` because its go.mod
# replaces the staging modules (k8s.io/api, k8s.io/apiserver, ...) with
# local paths (./staging/src/...) and requires them at v0.0.0. So it is
# built through a throw-away wrapper module that requires
# k8s.io/kubernetes at K8S_VERSION and adds, for every k8s.io module that
# kubernetes' own go.mod requires at v0.0.0, a replace to its published
# version: v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
# k8s.io/sample-cli-plugin and k8s.io/sample-controller are left out: they
# are not published and nothing built here needs them.
#
# etcd is built the same way, from a wrapper module requiring
# go.etcd.io/etcd/server/v3 (its module root is package main). Debian's
# etcd-server (3.4) starts but is below what Kubernetes 1.37 supports (no
# RequestWatchProgress, so watch-list clients misbehave). kwok installs as is with `go install`; run without a kubelet, it
# needs Stage objects, which are taken from its module's kustomize/stage.
#
# Environment:
#   HPA_SIGNALS_CACHE  cache root (default $HOME/.cache/hpa-signals)
#   K8S_VERSION        default v1.37.1 (the module proxy lists v1.37.2 but
#                      refuses its zip)
#   ETCD_VERSION       default v3.7.3
#   KWOK_VERSION       default v0.8.0
#
# The last line printed is the bin directory.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
# Staging modules are published as v0.<minor>.<patch> for k8s v1.<minor>.<patch>.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

CACHE_ROOT="${HPA_SIGNALS_CACHE:-${HOME}/.cache/hpa-signals}/control-plane"
KEY="k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}"
DEST="${CACHE_ROOT}/${KEY}"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)
STAMP_CONTENT="${KEY} binaries=${BINARIES[*]} stages=stages.yaml"

log() { printf '%s control plane: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cache_current() {
  [[ -f "${DEST}/stamp" ]] && [[ "$(cat "${DEST}/stamp")" == "${STAMP_CONTENT}" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "${DEST}/bin/${b}" ]] || return 1
  done
  [[ -s "${DEST}/stages.yaml" ]]
}

if cache_current; then
  log "cached at ${DEST}"
  echo "${DEST}/bin"
  exit 0
fi

mkdir -p "${CACHE_ROOT}"
# Serialise concurrent builds (e.g. parallel test binaries); the second one
# waits and then finds the cache current.
exec 9>"${CACHE_ROOT}/.lock"
if ! flock -n 9; then
  log "another build holds ${CACHE_ROOT}/.lock; waiting for it"
  flock 9
fi
if cache_current; then
  log "cached at ${DEST}"
  echo "${DEST}/bin"
  exit 0
fi
# Holding the lock, any work directory left is from a build that was killed.
rm -rf "${CACHE_ROOT}"/.build-*

command -v go >/dev/null || { log "go not found in PATH"; exit 1; }

# Work directory on the same filesystem as DEST, so the final mv is a rename.
WORK="$(mktemp -d "${CACHE_ROOT}/.build-${KEY}.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
# Run every go command outside the caller's module (tests call this script
# from inside the repository), so nothing touches the repository's go.mod.
cd "${WORK}"
OUT="${WORK}/result"
mkdir -p "${OUT}/bin"

# Keep any GOFLAGS the caller set (e.g. -buildvcs=false) and add -mod=mod so
# the wrapper modules may resolve their requirements.
export CGO_ENABLED=0
WRAPPER_GOFLAGS="${GOFLAGS:-} -mod=mod"
START_ALL=$(date +%s)

# ---- kubernetes -------------------------------------------------------------
log "resolving k8s.io/kubernetes@${K8S_VERSION}"
K8S_GOMOD="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[[ -f "${K8S_GOMOD}" ]] || { log "cannot find go.mod of k8s.io/kubernetes@${K8S_VERSION}"; exit 1; }
GO_DIRECTIVE="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "${K8S_GOMOD}")"

mkdir -p "${WORK}/k8s"
{
  echo "module hpa-signals.local/control-plane-build"
  echo
  echo "go ${GO_DIRECTIVE}"
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  echo "replace ("
  # Every k8s.io module kubernetes requires at v0.0.0 is a staging module.
  grep -E '^[[:space:]]+k8s\.io/[^[:space:]]+ v0\.0\.0([[:space:]]|$)' "${K8S_GOMOD}" |
    awk '{print $1}' | sort -u |
    grep -vE '^k8s\.io/(sample-cli-plugin|sample-controller)$' |
    while read -r mod; do
      echo "	${mod} => ${mod} ${STAGING_VERSION}"
    done
  echo ")"
} >"${WORK}/k8s/go.mod"
cat >"${WORK}/k8s/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
EOF

K8S_MINOR="${K8S_VERSION#v1.}"
K8S_MINOR="${K8S_MINOR%%.*}"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  K8S_LDFLAGS+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR}"
  K8S_LDFLAGS+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${BUILD_DATE}"
done

log "building kube-apiserver, kube-controller-manager, kube-scheduler ${K8S_VERSION} (cold build takes ~9 min on 2 cores, ~15 s with a warm Go build cache)..."
t0=$(date +%s)
(
  cd "${WORK}/k8s"
  GOFLAGS="${WRAPPER_GOFLAGS}" go mod download k8s.io/kubernetes
  GOFLAGS="${WRAPPER_GOFLAGS}" go build -trimpath -ldflags "${K8S_LDFLAGS}" -o "${OUT}/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
)
log "kubernetes binaries built in $(($(date +%s) - t0)) s"

# ---- etcd -------------------------------------------------------------------
log "building etcd ${ETCD_VERSION} (cold build takes ~1 min on 2 cores)..."
t0=$(date +%s)
mkdir -p "${WORK}/etcd"
cat >"${WORK}/etcd/go.mod" <<EOF
module hpa-signals.local/etcd-build

go ${GO_DIRECTIVE}

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
EOF
(
  cd "${WORK}/etcd"
  GOFLAGS="${WRAPPER_GOFLAGS}" go build -trimpath -ldflags "-s -w" -o "${OUT}/bin/etcd" go.etcd.io/etcd/server/v3
)
log "etcd built in $(($(date +%s) - t0)) s"

# ---- kwok -------------------------------------------------------------------
log "building kwok ${KWOK_VERSION} (cold build takes ~3 min on 2 cores)..."
t0=$(date +%s)
# `go install pkg@version` builds outside any main module; -mod must not be set.
GOFLAGS="${GOFLAGS:-}" GOBIN="${OUT}/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
log "kwok built in $(($(date +%s) - t0)) s"

# kwok without a kubelet needs Stage objects: node fast + heartbeat, pod fast.
KWOK_DIR="$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
STAGE_DIR="${KWOK_DIR}/kustomize/stage"
STAGE_FILES=(
  "${STAGE_DIR}/node/fast/node-initialize.yaml"
  "${STAGE_DIR}/node/heartbeat/node-heartbeat.yaml"
  "${STAGE_DIR}/pod/fast/pod-ready.yaml"
  "${STAGE_DIR}/pod/fast/pod-complete.yaml"
  "${STAGE_DIR}/pod/fast/pod-delete.yaml"
)
: >"${OUT}/stages.yaml"
for f in "${STAGE_FILES[@]}"; do
  [[ -f "${f}" ]] || { log "missing kwok stage file ${f}"; ls -R "${STAGE_DIR}" >&2 || true; exit 1; }
  { echo "---"; sed '/^---[[:space:]]*$/d' "${f}"; } >>"${OUT}/stages.yaml"
done

for b in "${BINARIES[@]}"; do
  [[ -x "${OUT}/bin/${b}" ]] || { log "missing binary ${b} after build"; exit 1; }
done
echo "${STAMP_CONTENT}" >"${OUT}/stamp"

# Move into place: the stale tree is renamed away first so DEST is either the
# old complete tree, absent, or the new complete tree.
if [[ -e "${DEST}" ]]; then
  mv "${DEST}" "${WORK}/stale"
fi
mv "${OUT}" "${DEST}"
log "built in $(($(date +%s) - START_ALL)) s; cached at ${DEST} ($(du -sh "${DEST}" | cut -f1))"
echo "${DEST}/bin"
