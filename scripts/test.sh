#!/usr/bin/env bash
# The whole test suite, provisioning what it needs first (cached after the first run):
#   - a real kube-apiserver + etcd (scripts/control-plane.sh; ~4-12 min the first time),
#   - helm, kubectl, yamllint and lua5.1 for the chart and Argo CD tests, and a Python venv with
#     Huawei Cloud's official SDK for tests/python_sdk.rs (scripts/tools.sh; it is always run: with
#     DCS_TOOLS_BIN set it only checks that folder, or completes it if it is its own).
# Then: cargo test over every target of every workspace crate. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${KUBEBUILDER_ASSETS:-}" ]]; then
  KUBEBUILDER_ASSETS="$(scripts/control-plane.sh | tail -n 1)"
  export KUBEBUILDER_ASSETS
fi
DCS_TOOLS_BIN="$(scripts/tools.sh | tail -n 1)"
export DCS_TOOLS_BIN
echo "control plane: ${KUBEBUILDER_ASSETS}; tools: ${DCS_TOOLS_BIN}" >&2

exec cargo test --workspace --all-targets "$@"
