#!/usr/bin/env bash
# Measures seata-server in file mode on this machine and writes the figures into
# docs/PERFORMANCE.md (between the "run.sh" markers; the rest of the file is left alone).
#
#   bench/run.sh              # about 2-3 minutes
#   DURATION=5s OPEN_TX=20000 bench/run.sh   # shorter
#   NO_DOC=1 bench/run.sh     # print the figures, leave the doc alone
#
# Steps: release build; start-up time (log line startup_ms, and wall time from spawn until the
# port accepts) over several starts; idle RSS; the loopback echo ceiling (echo server in its own
# process); the scenarios against the real server (AT 2 branches, protocol only, TCC 2
# branches); RSS after them; then a fresh server with OPEN_TX global transactions of 2 branches
# left open, and its RSS. Client and server share the machine, as the targets assume.
#
# Needs: bash, cargo, jq, awk. The server and the bench only talk over 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-32}
OPEN_TX=${OPEN_TX:-100000}
OPEN_CONNS=${OPEN_CONNS:-64}
STARTS=${STARTS:-5}

command -v jq >/dev/null || { echo "run.sh: jq is needed (apt-get install jq)" >&2; exit 2; }

WORK=$(mktemp -d)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
build_bins

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# start_server NAME: fresh store dir, spawn, wait for the port. Sets SERVER_PID, PORT,
# WALL_MS (spawn -> port accepts) and STARTUP_MS (the server's own log line).
STARTED=0
start_server() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    # A new port range per server: a port the previous server just gave up is not reused.
    STARTED=$((STARTED + 1))
    PORT=$(free_port $((38091 + 10 * STARTED)))
    local console
    console=$(free_port $((PORT + 1)))
    local t0
    t0=$(now_ms)
    (cd "$dir" && exec env NO_COLOR=1 SEATA_STORE_FILE_DIR="$dir/store" SERVER_PORT="$console" \
        "$BIN/seata-server" -h 127.0.0.1 -p "$PORT" >"$dir/server.log" 2>&1) &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    until accepts "$PORT"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run.sh: the server died; its log:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
    done
    WALL_MS=$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", b - a }')
    STARTUP_MS=""
    for _ in $(seq 100); do
        STARTUP_MS=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/server.log" | grep -o 'startup_ms=[0-9]*' | head -1 | cut -d= -f2 || true)
        [ -n "$STARTUP_MS" ] && break
        sleep 0.01
    done
}
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "== start-up ($STARTS starts)" >&2
: >"$WORK/startup.txt"
for i in $(seq "$STARTS"); do
    start_server "start$i"
    echo "$STARTUP_MS $WALL_MS" >>"$WORK/startup.txt"
    stop_server
done
STARTUP_LOG_MS=$(cut -d' ' -f1 "$WORK/startup.txt" | median)
STARTUP_WALL_MS=$(cut -d' ' -f2 "$WORK/startup.txt" | median)
STARTUP_WALL_MAX=$(cut -d' ' -f2 "$WORK/startup.txt" | sort -n | tail -1)

echo "== server for the scenarios" >&2
start_server main
sleep 1
IDLE_RSS_KB=$(rss_kb "$SERVER_PID")

run_bench() { # NAME ARGS...: runs seata-bench, keeps its JSON in $WORK/NAME.json
    local name=$1
    shift
    echo "== $name: seata-bench $*   (load $(load1))" >&2
    "$BIN/seata-bench" "$@" --json >"$WORK/$name.json"
    jq -c '{tx_per_s, rt_per_s, p50_us, p99_us, errors_total, conflicts}' "$WORK/$name.json" >&2
}

ECHO_PORT=$(free_port 39091)
"$BIN/seata-bench" echo-server --addr "127.0.0.1:$ECHO_PORT" 2>/dev/null &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
until accepts "$ECHO_PORT"; do sleep 0.01; done
COMMON=(--conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP")
run_bench echo echo --addr "127.0.0.1:$ECHO_PORT" "${COMMON[@]}" --server-pid "$ECHO_PID"
kill "$ECHO_PID"
wait "$ECHO_PID" 2>/dev/null || true

ADDR=127.0.0.1:$PORT
run_bench at --addr "$ADDR" "${COMMON[@]}" --branches 2 --mode at --server-pid "$SERVER_PID"
run_bench protocol --addr "$ADDR" "${COMMON[@]}" --branches 0 --server-pid "$SERVER_PID"
run_bench tcc --addr "$ADDR" "${COMMON[@]}" --branches 2 --mode tcc --server-pid "$SERVER_PID"
sleep 1
LOADED_RSS_KB=$(rss_kb "$SERVER_PID")

# Group commit as the disk sees it: fsyncs of the server during a further AT run (perf trace
# counts them without stopping the process; skipped when perf cannot trace here).
FSYNC=""
if [ -z "${NO_PERF:-}" ] && command -v perf >/dev/null; then
    echo "== fsyncs during an AT run (perf trace)" >&2
    "$BIN/seata-bench" --addr "$ADDR" --conns "$CONNS" --duration 6s --warmup 1s --branches 2 --mode at \
        --quiet --json >"$WORK/fsync-run.json" &
    BENCH_PID=$!
    sleep 2
    perf trace -s -e fsync,fdatasync -p "$SERVER_PID" -- sleep 4 >"$WORK/fsync.txt" 2>&1 || true
    wait "$BENCH_PID" || true
    # Summary line: name, calls, errors, total ms, min, avg, max, stddev.
    FSYNC=$(awk '$1 == "fsync" || $1 == "fdatasync" { n += $2; t += $4; if ($7 > m) m = $7 }
                 END { if (n > 0) printf "%d %.2f %.1f", n, t / n, m }' "$WORK/fsync.txt")
fi
stop_server

echo "== $OPEN_TX open global transactions of 2 branches" >&2
start_server open
T0=$(now_ms)
run_bench open --addr "127.0.0.1:$PORT" --conns "$OPEN_CONNS" --branches 2 --mode at \
    --open-only "$OPEN_TX" --tx-timeout 30m --server-pid "$SERVER_PID"
OPEN_S=$(awk -v a="$T0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
sleep 1
OPEN_RSS_KB=$(rss_kb "$SERVER_PID")
OPEN_HWM_KB=$(hwm_kb "$SERVER_PID")
T0=$(now_ms)
stop_server
STOP_OPEN_MS=$(awk -v a="$T0" -v b="$(now_ms)" 'BEGIN { printf "%.0f", b - a }')

# ---- figures and targets -------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
CEIL=$(j echo .rt_per_s)
AT=$(j at .tx_per_s)
PROTO=$(j protocol .tx_per_s)
AT_P99=$(j at .p99_us)
OPENED=$(j open .completed)
ratio() { awk -v m="$1" -v c="$2" -v rt="$3" 'BEGIN { printf "%.0f", 100 * m / (c / rt) }'; }
AT_SHARE=$(ratio "$AT" "$CEIL" 6)
PROTO_SHARE=$(ratio "$PROTO" "$CEIL" 2)

row() { # NAME LABEL
    local f=$WORK/$1.json
    jq -r --arg name "$2" '
      def ms: (. / 1000 * 100 | round / 100);
      def cpu(u): if u == null then "–" else "\(u.cores) / \(u.cpu_us_per_op | round)" end;
      "| \($name) | \(.tx_per_s // .rt_per_s | round) | \(.p50_us | ms) | \(.p99_us | ms) | \(.p999_us | ms) | \(.errors_total) | \(cpu(.client)) | \(cpu(.server)) | \(.server.switches_per_op // "–") | \(.load_avg[0]) |"' "$f"
}
rpc_rows() { # NAME: one row per RPC kind
    jq -r 'def ms: (. / 1000 * 100 | round / 100);
      .scenario as $s | .latency_us | to_entries[] |
      "| \($s) | \(.key) | \(.value.count) | \(.value.p50_us | ms) | \(.value.p99_us | ms) | \(.value.p999_us | ms) |"' "$WORK/$1.json"
}

SECTION=$WORK/section.md
{
    echo "<!-- run.sh:begin (generated by bench/run.sh; edits here are overwritten) -->"
    echo "## File mode, measured by \`bench/run.sh\`"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`."
    machine
    echo "Client and server on the same machine over 127.0.0.1; the 1-minute load average at the end of"
    echo "each run is in the last column (other work shares these cores)."
    echo
    echo "Commands (\`PORT\` is the server's, \`EPORT\` the echo server's):"
    echo
    echo '```sh'
    echo "seata-bench echo-server --addr 127.0.0.1:EPORT &"
    echo "seata-bench echo --addr 127.0.0.1:EPORT --conns $CONNS --duration $DURATION --warmup $WARMUP"
    echo "seata-bench --addr 127.0.0.1:PORT --conns $CONNS --duration $DURATION --warmup $WARMUP --branches 2 --mode at"
    echo "seata-bench --addr 127.0.0.1:PORT --conns $CONNS --duration $DURATION --warmup $WARMUP --branches 0"
    echo "seata-bench --addr 127.0.0.1:PORT --conns $CONNS --duration $DURATION --warmup $WARMUP --branches 2 --mode tcc"
    echo "seata-bench --addr 127.0.0.1:PORT --conns $OPEN_CONNS --branches 2 --open-only $OPEN_TX --tx-timeout 30m"
    echo '```'
    echo
    echo "| scenario | tx/s (echo: round trips/s) | p50 ms | p99 ms | p99.9 ms | errors | client cores / µs per tx | server cores / µs per tx | server context switches per tx | load |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    row echo "echo ceiling, $CONNS conns"
    row at "AT, 2 branches, $CONNS conns"
    row protocol "protocol only (begin + commit), $CONNS conns"
    row tcc "TCC, 2 branches, $CONNS conns"
    echo
    echo "Latency by RPC kind (ms; \`branch_commit\`: GlobalCommit sent → BranchCommit at the RM;"
    echo "\`commit_to_branches\`: AT commit answer → last branch commit at the RM):"
    echo
    echo "| scenario | kind | count | p50 | p99 | p99.9 |"
    echo "| --- | --- | ---: | ---: | ---: | ---: |"
    rpc_rows at
    rpc_rows protocol
    rpc_rows tcc
    echo
    echo "Start-up ($STARTS starts, median): \`startup_ms\` $STARTUP_LOG_MS ms in the log; spawn → port"
    echo "accepting $STARTUP_WALL_MS ms (max $STARTUP_WALL_MAX ms)."
    echo "Memory (VmRSS): idle $(mb "$IDLE_RSS_KB") MB; after the scenarios $(mb "$LOADED_RSS_KB") MB;"
    echo "with $OPENED open global transactions of 2 branches $(mb "$OPEN_RSS_KB") MB (peak $(mb "$OPEN_HWM_KB") MB),"
    echo "opened in $OPEN_S s ($(j open .tx_per_s | awk '{ printf "%.0f", $1 }') tx/s); SIGTERM to exit with them open: $STOP_OPEN_MS ms."
    echo
        if [ -n "$FSYNC" ]; then
        read -r FS_N FS_AVG FS_MAX <<<"$FSYNC"
        FS_TX=$(j fsync-run .tx_per_s)
        echo "Group commit (\`perf trace -s -e fsync,fdatasync\` on the server for 4 s of a further AT run at"
        echo "$(printf '%.0f' "$FS_TX") tx/s): $FS_N fsyncs, $(awk -v n="$FS_N" 'BEGIN { printf "%.0f", n / 4 }')/s, mean $FS_AVG ms, max $FS_MAX ms; at 5 store"
        echo "requests per AT transaction that is $(awk -v n="$FS_N" -v t="$FS_TX" 'BEGIN { printf "%.1f", t * 5 / (n / 4) }') requests per fsync."
        echo
    fi
    echo "| target | measured | holds? |"
    echo "| --- | --- | --- |"
    echo "| AT 2 branches, $CONNS conns ≥ 50 % of ceiling ÷ 6 ($(awk -v c="$CEIL" 'BEGIN { printf "%.0f", c / 12 }') tx/s) | $(printf '%.0f' "$AT") tx/s = $AT_SHARE % of ceiling ÷ 6 | $(yes_no "$AT_SHARE >= 50") |"
    echo "| AT p99 < 10 ms | $(ms "$AT_P99") ms | $(yes_no "$AT_P99 < 10000") |"
    echo "| protocol only ≥ 60 % of ceiling ÷ 2 ($(awk -v c="$CEIL" 'BEGIN { printf "%.0f", c * 0.3 }') tx/s) | $(printf '%.0f' "$PROTO") tx/s = $PROTO_SHARE % of ceiling ÷ 2 | $(yes_no "$PROTO_SHARE >= 60") |"
    echo "| idle RSS < 20 MB | $(mb "$IDLE_RSS_KB") MB | $(yes_no "$IDLE_RSS_KB < 20480") |"
    echo "| $OPENED open global tx of 2 branches < 300 MB | $(mb "$OPEN_RSS_KB") MB | $(yes_no "$OPEN_RSS_KB < 307200 && $OPENED >= 100000") |"
    echo "| start-up < 100 ms | $STARTUP_LOG_MS ms (log), $STARTUP_WALL_MS ms (wall) | $(yes_no "$STARTUP_WALL_MAX < 100") |"
    echo "<!-- run.sh:end -->"
} >"$SECTION"

cat "$SECTION"
for f in echo at protocol tcc open; do
    echo "$f: $(cat "$WORK/$f.json")" >&2
done
splice_section run.sh "$SECTION"
