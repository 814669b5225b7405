#!/usr/bin/env bash
# Build, run or test cutoff on Debian bookworm.
#
#   ./build.sh run [cutoff args...]   Release build in build/, then run it
#   ./build.sh test                   sanitizer build in build-test/, then ctest
#                                     (two tests at a time; CTEST_PARALLEL_LEVEL=1
#                                     for one)
#   ./build.sh build                  Release build in build/ only
#   ./build.sh fuzz [SECONDS]         libFuzzer build in build-fuzz/, then each fuzz
#                                     target for SECONDS (default 30), in parallel
#   ./build.sh tsan                   ThreadSanitizer build in build-tsan/ (clang), then
#                                     the integration tests of signals, reload, drain,
#                                     /metrics and /connections on two workers; any
#                                     TSan report fails the run
#
# Each command first installs the Debian packages it needs that are missing.
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DEPS=(build-essential cmake pkg-config libuv1-dev libc-ares-dev libtomlplusplus-dev libspdlog-dev
            node-llhttp libssl-dev)
TEST_DEPS=(catch2 python3 curl wget iproute2 openssl ca-certificates)
FUZZ_DEPS=(clang libclang-rt-14-dev)
TSAN_DEPS=(clang libclang-rt-14-dev python3 curl wget iproute2)

install_missing() {
  local missing=() pkg sudo=()
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=(sudo); fi
  echo "build.sh: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

release_build() {
  install_missing "${BUILD_DEPS[@]}"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCUTOFF_TESTS=OFF
  cmake --build build -j"$(nproc)"
}

# Runs one fuzz target on a temporary copy of its seed corpus (new inputs
# never land in the repo) plus its saved regressions; prints one line. A
# crash or broken invariant leaves its input in build-fuzz/artifacts/.
run_fuzzer() {
  local target=$1 seconds=$2 work=$3
  local corpus=$work/$target artifacts=build-fuzz/artifacts/$target/ log=build-fuzz/logs/$target.log
  local dict=tests/fuzz/http.dict
  [ "$target" = config ] && dict=tests/fuzz/config.dict
  mkdir -p "$corpus" "$artifacts" build-fuzz/logs
  cp -R "tests/fuzz/corpus/$target/." "$corpus/"
  local rc=0
  "build-fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -max_len=4096 \
    -print_final_stats=1 -dict="$dict" -artifact_prefix="$artifacts" \
    "$corpus" "tests/fuzz/regressions/$target" >"$log" 2>&1 || rc=$?
  local runs rate cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz_$target: ok, ${runs:-?} runs in ${seconds}s (${rate:-?}/s), ${cov:-cov: ?}," \
      "$(find "$corpus" -type f | wc -l) inputs"
    return 0
  fi
  local input
  input=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
  echo "fuzz_$target: FAILED (exit $rc): input ${input:-not saved}, log $log"
  # What failed: the invariant or sanitizer report, up to its SUMMARY line.
  awk '/invariant violated|ERROR: |runtime error:/ { shown = 1 }
       shown { print "    " $0; if (/^SUMMARY:/ || ++lines == 60) exit }' "$log"
  return 1
}

fuzz() {
  local seconds=${1:-30}
  if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 fuzz [SECONDS]" >&2
    exit 2
  fi
  install_missing "${BUILD_DEPS[@]}" "${FUZZ_DEPS[@]}"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCUTOFF_FUZZ=ON -DCUTOFF_TESTS=OFF
  local targets=() dir
  for dir in tests/fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
  # One target that needs them all: given one by one, make builds the
  # targets one after another, and each target's last file alone.
  cmake --build build-fuzz -j"$(nproc)" --target fuzz_targets
  FUZZ_WORK=$(mktemp -d)
  trap 'rm -rf "$FUZZ_WORK"' EXIT
  # In parallel: the targets share the cores, and the whole run takes SECONDS.
  local pids=() target failed=0
  for target in "${targets[@]}"; do
    run_fuzzer "$target" "$seconds" "$FUZZ_WORK" >"$FUZZ_WORK/$target.summary" &
    pids+=($!)
  done
  for i in "${!targets[@]}"; do
    wait "${pids[$i]}" || failed=1
    cat "$FUZZ_WORK/${targets[$i]}.summary"
  done
  return "$failed"
}

# The integration tests where the control thread (signals, the admin
# endpoint) and the worker threads meet, run with two workers each.
TSAN_TESTS=(
  test_lifecycle                               # SIGTERM/SIGINT, drain, SIGHUP, client cap
  test_operations.AdminTwoWorkersTest          # /metrics, /connections, /readyz while draining
  test_operations.ReloadInFlightTwoWorkersTest # SIGHUP with exchanges in flight
  test_operations.DrainTwoWorkersTest          # SIGTERM with exchanges on both workers
  test_operations.ClientCapTwoWorkersTest      # the client count the workers share
  test_operations.LogsTest                     # SIGUSR1 reopens the shared access log
  test_forwarding.MultiWorkerTest              # concurrent clients on both loops
  test_test_ids.TestIdsTest                    # the test registry both workers write
)

tsan() {
  install_missing "${BUILD_DEPS[@]}" "${TSAN_DEPS[@]}"
  CC=clang CXX=clang++ cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCUTOFF_TSAN=ON \
    -DCUTOFF_TESTS=OFF
  cmake --build build-tsan -j"$(nproc)" --target cutoff
  local bin=$PWD/build-tsan/cutoff
  # The first report ends the process with exit code 66; the harness fails
  # the test whose cutoff made a report, and prints it.
  export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
  # clang 14's TSan assumes the address layout of at most 28 bits of mmap
  # randomisation; on kernels that use more (vm.mmap_rnd_bits = 32, as on
  # recent Ubuntu kernels), it stops with "unexpected memory mapping" before
  # main. Turning address randomisation off for the run avoids that;
  # children inherit it.
  local run=()
  if ! "$bin" --check --config conf/cutoff.toml >/dev/null 2>build-tsan/probe.log; then
    if grep -q "unexpected memory mapping" build-tsan/probe.log; then
      run=(setarch "$(uname -m)" -R)
      echo "build.sh: TSan needs address randomisation off on this kernel: running under ${run[*]}" >&2
    else
      cat build-tsan/probe.log >&2
      exit 1
    fi
  fi
  # TSan makes cutoff several times slower: the tests stretch their timings
  # further than for ASan. Tests that leave the number of workers to the
  # harness get two.
  export CUTOFF_BIN=$bin CUTOFF_WORKERS=2 CUTOFF_TIME_SCALE=${CUTOFF_TIME_SCALE:-3}
  cd tests/integration
  exec "${run[@]}" python3 -B -m unittest -v "${TSAN_TESTS[@]}"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  build)
    release_build
    ;;
  run)
    release_build
    exec build/cutoff "$@"
    ;;
  test)
    install_missing "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
    cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DCUTOFF_SANITIZE=ON
    cmake --build build-test -j"$(nproc)"
    # Sanitizer builds are slower: integration tests stretch their timings.
    export CUTOFF_TIME_SCALE=${CUTOFF_TIME_SCALE:-2}
    # Two test programs at a time: the integration modules mostly wait on
    # their deadlines (a fifth of a core each, on average), so two of them
    # share two cores without stretching each other's timings.
    export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-2}
    exec ctest --test-dir build-test --output-on-failure --timeout 300
    ;;
  fuzz)
    fuzz "$@"
    ;;
  tsan)
    tsan
    ;;
  *)
    echo "usage: $0 run [cutoff args...] | test | build | fuzz [SECONDS] | tsan" >&2
    exit 2
    ;;
esac
