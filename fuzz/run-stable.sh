#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain (no nightly, no sanitizers): the targets are
# built with SanitizerCoverage through stable `-C passes` / `-C llvm-args` flags, as cargo-fuzz
# does with `--sanitizer none`, and with overflow checks and debug assertions on. Memory errors
# are not caught without ASan (the crate forbids unsafe outside shard/sys.rs, which no target
# reaches); panics, overflows and hangs are.
#
#   fuzz/run-stable.sh SECONDS [TARGET...]     # default: every target, SECONDS each
#
# Inputs found go to fuzz/corpus/<target>/ (gitignored); a crash to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(envelope upgrade admin_request session_v1 session_v2 sealed_open ws_frames)
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target/fuzz-stable}"
# With an explicit --target the flags reach only the targets, not build scripts and proc macros.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --bins --target "$triple"
bin="$CARGO_TARGET_DIR/$triple/release"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=(); [ -d "seeds/$t" ] && seeds=("seeds/$t")
  dict=(); [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  case "$t" in
    session_v1|session_v2|sealed_open|ws_frames) extra=(-len_control=0 -max_len=4096) ;;
    upgrade|admin_request) extra=(-max_len=20000) ;;
    *) extra=() ;;
  esac
  echo "== $t: ${secs}s"
  "$bin/$t" "corpus/$t" "${seeds[@]}" -max_total_time="$secs" \
    -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" -print_final_stats=1 "${dict[@]}" "${extra[@]}" 2>&1 |
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done)" || true
done
