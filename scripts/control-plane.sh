#!/usr/bin/env bash
# Provision a real Kubernetes control plane (kube-apiserver + etcd) for the test suite.
#
# No registry reachable from our build machines ships a kube-apiserver binary, but Debian bookworm's
# `kubernetes` source package is the complete upstream v1.20.2 tree (with vendor/), so we build
# kube-apiserver from it and take etcd from Debian's `etcd-server` package. Everything lands in a cache
# folder outside the repository; the folder is printed as the LAST line of stdout so callers can do
#
#     export KUBEBUILDER_ASSETS=$(scripts/control-plane.sh)
#
# (the name envtest uses for "folder holding kube-apiserver and etcd"). All progress goes to stderr.
#
# Environment:
#   KUBEBUILDER_ASSETS       if set and holding both binaries: printed as is, nothing else happens.
#   DCS_CONTROL_PLANE_CACHE  base cache folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/dcs-task-operator/control-plane).
#
# Idempotent: when both binaries are present and runnable it returns at once (~0.2 s). The first build
# takes about 5 minutes on 2 idle cores (up to ~15 on a busy or slower machine); a rebuild reuses the Go
# build cache kept under the folder and takes about 1-2 minutes.
set -euo pipefail

readonly K8S_VERSION="v1.20.2"
readonly SOURCE_PACKAGE="kubernetes"
# The package version embeds the upstream version it really contains ("1.20.5+really1.20.2").
readonly UPSTREAM_MARKER="really${K8S_VERSION#v}"
readonly BUILD_PACKAGES=(golang-1.19-go rsync dpkg-dev golang-github-modern-go-reflect2-dev etcd-server openssl)
readonly GO_ROOT="/usr/lib/go-1.19"
readonly REFLECT2_SRC="/usr/share/gocode/src/github.com/modern-go/reflect2"
readonly DEBIAN_SOURCES="/etc/apt/sources.list.d/debian.sources"

log() {
  printf '[control-plane] %s\n' "$*" >&2
}

die() {
  printf '[control-plane] ERROR: %s\n' "$*" >&2
  exit 1
}

# True when the folder holds a kube-apiserver of the expected version and an etcd that both start.
assets_runnable() {
  local dir="$1"
  [[ -x "${dir}/kube-apiserver" && -x "${dir}/etcd" ]] || return 1
  "${dir}/etcd" --version >/dev/null 2>&1 || return 1
  apiserver_runnable "${dir}"
}

# True when the folder holds a kube-apiserver that starts and reports the expected version.
apiserver_runnable() {
  local dir="$1" version
  [[ -x "${dir}/kube-apiserver" ]] || return 1
  version="$("${dir}/kube-apiserver" --version 2>/dev/null)" || return 1
  [[ "${version}" == *"${K8S_VERSION}"* ]]
}

# Runs a command as root (directly, or through sudo when available).
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

package_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

install_build_packages() {
  local missing=() pkg
  for pkg in "${BUILD_PACKAGES[@]}"; do
    package_installed "${pkg}" || missing+=("${pkg}")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "build packages already installed"
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  # RUNLEVEL=1 keeps etcd-server's maintainer scripts from starting a system-wide etcd where init allows it.
  if ! as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    log "apt-get install failed; refreshing the package lists once and retrying"
    as_root apt-get update >&2
    as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

# Downloads the kubernetes source package through a private apt configuration (deb-src entries derived
# from the machine's own deb entries) so the system's apt sources and lists stay untouched.
download_source_package() {
  local apt_dir="$1" dest="$2"
  mkdir -p "${apt_dir}/sources.list.d" "${apt_dir}/lists/partial" "${apt_dir}/cache/archives/partial" "${dest}"
  sed -e 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' "${DEBIAN_SOURCES}" \
    >"${apt_dir}/sources.list.d/debian-src.sources"
  grep -q '^Types: deb-src$' "${apt_dir}/sources.list.d/debian-src.sources" \
    || die "found no 'Types: deb' entry in ${DEBIAN_SOURCES} to derive a deb-src entry from"

  local apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=${apt_dir}/sources.list.d"
    -o "Dir::State::Lists=${apt_dir}/lists"
    -o "Dir::Cache=${apt_dir}/cache"
    -o "APT::Sandbox::User=$(id -un)"
  )
  log "fetching source package indices (private apt lists under ${apt_dir})"
  apt-get "${apt_opts[@]}" update >&2
  log "downloading source package '${SOURCE_PACKAGE}'"
  (cd "${dest}" && apt-get "${apt_opts[@]}" source --download-only "${SOURCE_PACKAGE}" >&2)
}

build_kube_apiserver() {
  local assets="$1"
  local build="${assets}/build"
  local downloads="${build}/source-package"
  local gopath="${build}/gopath"
  # A fixed source location keeps the Go build cache valid between rebuilds.
  local tree="${gopath}/src/k8s.io/kubernetes"

  install_build_packages
  [[ -x "${GO_ROOT}/bin/go" ]] || die "Go not found at ${GO_ROOT}/bin/go after installing golang-1.19-go"
  [[ -d "${REFLECT2_SRC}" ]] || die "reflect2 sources not found at ${REFLECT2_SRC}"

  local dsc
  dsc="$(find "${downloads}" -maxdepth 1 -name "${SOURCE_PACKAGE}_*${UPSTREAM_MARKER}*.dsc" -print -quit 2>/dev/null || true)"
  if [[ -z "${dsc}" ]]; then
    rm -rf "${downloads}"
    download_source_package "${build}/apt" "${downloads}"
    dsc="$(find "${downloads}" -maxdepth 1 -name "${SOURCE_PACKAGE}_*.dsc" -print -quit)"
    [[ -n "${dsc}" ]] || die "apt-get source produced no ${SOURCE_PACKAGE} .dsc file"
    [[ "${dsc}" == *"${UPSTREAM_MARKER}"* ]] \
      || die "source package $(basename "${dsc}") does not contain upstream ${K8S_VERSION}; this script expects Debian bookworm"
  else
    log "reusing downloaded source package $(basename "${dsc}")"
  fi

  log "unpacking $(basename "${dsc}") into ${tree}"
  rm -rf "${tree}"
  mkdir -p "$(dirname "${tree}")"
  dpkg-source --no-check -x "${dsc}" "${tree}" >&2

  # v1.20.2 vendors reflect2 v1.0.1, whose runtime linknames break with Go >= 1.18 (json-iterator
  # crashes at run time). Debian's reflect2 1.0.2 is API compatible and works.
  log "replacing vendored reflect2 with Debian's 1.0.2"
  local vendored="${tree}/vendor/github.com/modern-go/reflect2"
  [[ -d "${vendored}" ]] || die "unexpected source tree: ${vendored} missing"
  find "${vendored}" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  find "${REFLECT2_SRC}" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp {} "${vendored}/" \;

  export PATH="${GO_ROOT}/bin:${PATH}"
  export GOPATH="${gopath}"
  export GOCACHE="${build}/go-build-cache"
  export GO111MODULE=off
  export GOPROXY=off
  export GOFLAGS=
  export CGO_ENABLED=0
  export KUBE_GIT_VERSION="${K8S_VERSION}"
  export KUBE_GIT_TREE_STATE=archive

  local started=${SECONDS}
  log "generating code (make generated_files, ~1 minute)"
  make -C "${tree}" generated_files >&2

  local version_pkgs=(k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/component-base/version
    k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version)
  local major="${K8S_VERSION#v}"
  major="${major%%.*}"
  local minor="${K8S_VERSION#v*.}"
  minor="${minor%%.*}"
  local build_date
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ldflags="-s -w" pkg
  for pkg in "${version_pkgs[@]}"; do
    ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=archive -X ${pkg}.buildDate=${build_date}"
  done

  log "building kube-apiserver ${K8S_VERSION} (first time: about 5-15 minutes; with the Go build cache: 1-2)"
  (cd "${tree}" && go build -ldflags "${ldflags}" -o "${build}/kube-apiserver.new" ./cmd/kube-apiserver) >&2
  mv -f "${build}/kube-apiserver.new" "${assets}/kube-apiserver"
  log "kube-apiserver built in $((SECONDS - started)) s"

  log "removing unpacked source tree (Go build cache kept in ${GOCACHE})"
  # Go marks module/build files read-only in places; make them writable before removing.
  chmod -R u+w "${gopath}"
  rm -rf "${gopath}"
}

provide_etcd() {
  local assets="$1" etcd_bin
  etcd_bin="$(command -v etcd || true)"
  [[ -n "${etcd_bin}" ]] || etcd_bin=/usr/bin/etcd
  [[ -x "${etcd_bin}" ]] || die "etcd not found after installing etcd-server"
  cp -f "${etcd_bin}" "${assets}/etcd.new"
  mv -f "${assets}/etcd.new" "${assets}/etcd"
  log "etcd: $("${assets}/etcd" --version 2>&1 | head -n 1)"
}

main() {
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    if [[ -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
      printf '%s\n' "${KUBEBUILDER_ASSETS}"
      return 0
    fi
    die "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} does not hold executable kube-apiserver and etcd; unset it to let this script provision them"
  fi

  local base="${DCS_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/dcs-task-operator/control-plane}"
  local assets="${base}/${K8S_VERSION}"
  if assets_runnable "${assets}"; then
    printf '%s\n' "${assets}"
    return 0
  fi

  if ! command -v apt-get >/dev/null 2>&1 || [[ ! -f "${DEBIAN_SOURCES}" ]]; then
    die "this script builds kube-apiserver from Debian packages and needs apt-get and ${DEBIAN_SOURCES}.
On other systems, set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd binaries from envtest, e.g.
    export KUBEBUILDER_ASSETS=\$(setup-envtest use -p path)"
  fi

  mkdir -p "${assets}"
  # Serialise concurrent runs (two terminals, parallel CI steps) on the same cache folder.
  exec 9>"${assets}/.lock"
  if ! flock -n 9; then
    log "another run is provisioning ${assets}; waiting for it"
    flock 9
  fi
  if assets_runnable "${assets}"; then
    printf '%s\n' "${assets}"
    return 0
  fi

  if apiserver_runnable "${assets}"; then
    install_build_packages
  else
    build_kube_apiserver "${assets}"
  fi
  provide_etcd "${assets}"

  assets_runnable "${assets}" || die "provisioned binaries in ${assets} do not run; see the log above"
  log "ready: ${assets}"
  printf '%s\n' "${assets}"
}

main "$@"
