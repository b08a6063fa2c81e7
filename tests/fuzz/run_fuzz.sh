#!/bin/sh
# Runs each fuzz target for SECONDS: tests/fuzz/run_fuzz.sh SECONDS TARGET...
# The corpus grows in build/fuzz/corpus/TARGET, seeded from the repository's own files; crashing
# inputs are copied to tests/fuzz/regressions/TARGET/ (commit them: `make test` replays them).
# nnc never frees (a compile is short-lived), so leak detection is off, and the fuzzer runs in
# one-minute rounds that each start a fresh process (memory would otherwise only grow).
set -u
seconds=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
status=0
for target in "$@"; do
    corpus=build/fuzz/corpus/$target
    crashes=build/fuzz/crashes/$target
    mkdir -p "$corpus" "$crashes" "tests/fuzz/regressions/$target"
    case $target in
        frontend) seeds="models models/lib tests/errors tests/errors/lib tests/golden tests/fuzz/regressions/frontend" ;;
        safetensors) seeds="tests/fuzz/seeds/safetensors tests/fuzz/regressions/safetensors" ;;
        npy) seeds="tests/fuzz/seeds/npy tests/fuzz/regressions/npy" ;;
        *) echo "run_fuzz: unknown target $target" >&2; exit 2 ;;
    esac
    for dir in $seeds; do
        [ -d "$dir" ] && find "$dir" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$corpus/" \; 2>/dev/null
    done
    echo "== fuzzing $target for $seconds s"
    left=$seconds
    runs=0
    while [ "$left" -gt 0 ]; do
        round=$(( left < 60 ? left : 60 ))
        log=$(ASAN_OPTIONS=detect_leaks=0 build/fuzz/fuzz_$target -max_total_time="$round" -timeout=10 -rss_limit_mb=2048 \
              -max_len=65536 -detect_leaks=0 -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" 2>&1)
        n=$(printf '%s\n' "$log" | sed -n 's/^stat::number_of_executed_units: *//p')
        runs=$((runs + ${n:-0}))
        left=$((left - round))
        if printf '%s\n' "$log" | grep -q -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|Test unit written'; then
            printf '%s\n' "$log" | grep -E '^==[0-9]+==ERROR|^SUMMARY|Test unit written' | head -5
            break
        fi
    done
    echo "$target: $runs executions in $((seconds - left)) s, corpus $(ls "$corpus" | wc -l) inputs"
    for crash in "$crashes"/*; do
        [ -f "$crash" ] || continue
        cp "$crash" "tests/fuzz/regressions/$target/"
        echo "fuzz: $target: crashing input kept as tests/fuzz/regressions/$target/$(basename "$crash")"
        status=1
    done
done
exit $status
