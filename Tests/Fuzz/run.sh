#!/bin/sh
# Builds the libFuzzer targets (Tests/Fuzz) with the fuzzer and address
# sanitizers and runs each for SECONDS (default 60). Exits non-zero when any
# target crashes, fails one of its checks, hangs or runs out of memory.
#
#   Tests/Fuzz/run.sh [SECONDS] [TARGET...]
#
# New inputs go to .build-fuzz/corpus/TARGET (the seeds in
# Tests/Fuzz/corpus/TARGET are only read; Tests/Fuzz/dict/TARGET.dict, when
# there, lists the format's words); a crashing input is saved as
# .build-fuzz/artifacts/TARGET/crash-* and its path printed; a run's
# output is in .build-fuzz/logs/TARGET.log.
set -u

seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-FuzzRules FuzzSieve FuzzEnvelope FuzzMbox FuzzHeaders FuzzRecord FuzzLMTP}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
scratch=$root/.build-fuzz
swift=${SWIFT:-swift}

# --sanitize=fuzzer: SwiftPM links libFuzzer's main and leaves main alone.
# -Xswiftc -sanitize=fuzzer,address: both sanitizers for every module,
# dependencies included, so that the parsers are instrumented, not only the
# harnesses. (SwiftPM's --sanitize=fuzzer --sanitize=address alone passes
# two -sanitize= options, in an order that changes from run to run, and the
# compiler keeps only the last: a module got coverage or ASan, not both.)
build="$swift build --package-path $here --scratch-path $scratch -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address"
$build || { echo "run.sh: the fuzz targets do not build" >&2; exit 2; }
bin=$($build --show-bin-path) || exit 2

# A trap (a Swift runtime failure) is libFuzzer's to report: Swift's own
# backtracer would run first, and trips ASan.
SWIFT_BACKTRACE=enable=no
export SWIFT_BACKTRACE

status=0
for target in $targets; do
    corpus=$scratch/corpus/$target
    artifacts=$scratch/artifacts/$target
    log=$scratch/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$scratch/logs"
    dict=
    [ -f "$here/dict/$target.dict" ] && dict=-dict=$here/dict/$target.dict
    echo "== $target: $seconds s"
    # -timeout: one input taking 10 s is a hang. -rss_limit_mb: room for
    # ASan's quarantine (256 MB) and the corpus, and no more.
    "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" $dict \
        "$corpus" "$here/corpus/$target" >"$log" 2>&1
    result=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed 's/^/   /'
    if [ $result -ne 0 ]; then
        status=1
        echo "!! $target FAILED (status $result), see $log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|Fatal error|.*Fatal error:)' "$log" | head -5 | sed 's/^/   /'
        # Where: the first frame in the project's code (a trap says no more).
        grep -m1 -E '^ +#[0-9]+ .* /.*/(Sources|Tests/Fuzz/Sources)/' "$log" | sed 's/^ *#[0-9]* 0x[0-9a-f]* in /   at /'
        grep -E '^artifact_prefix=|Test unit written to' "$log" | sed 's/^/   /'
    fi
done
exit $status
