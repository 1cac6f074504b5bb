#!/usr/bin/env bash
# Fuzzes the DCS task-page decoder (fuzz/fuzz_targets/decode_tasks.rs) with libFuzzer for
# SECONDS seconds (default 20).
#
#   scripts/fuzz.sh [SECONDS]
#
# Needs only the stable toolchain: cargo-fuzz passes nightly-only rustc flags (the sanitizer and
# coverage instrumentation), which RUSTC_BOOTSTRAP=1 lets stable accept. cargo-fuzz is installed
# from crates.io when missing. Build output stays in fuzz/target; inputs the fuzzer finds go to
# fuzz/corpus/decode_tasks and crashes to fuzz/artifacts/decode_tasks (all git-ignored), while
# the committed seeds in fuzz/seeds/decode_tasks are only read.
set -euo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS]   (a whole number of seconds, at least 1; default 20)" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

# The fuzz crate is its own workspace; start its lock file from the main one so that it builds
# the same dependency versions the project tests with.
if [ ! -f Cargo.lock ]; then
    cp "$repo/Cargo.lock" Cargo.lock
fi

mkdir -p "$repo/fuzz/corpus/decode_tasks"
export RUSTC_BOOTSTRAP=1
# The first corpus folder is where libFuzzer writes what it finds; the seeds are only read.
exec cargo fuzz run decode_tasks "$repo/fuzz/corpus/decode_tasks" "$repo/fuzz/seeds/decode_tasks" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
