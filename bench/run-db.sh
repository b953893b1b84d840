#!/usr/bin/env bash
# Measures seata-server in db mode against the database's own ceiling for the same rows, and
# writes the figures into docs/PERFORMANCE.md (between the "run-db.sh" markers; the rest of the
# file is left alone).
#
#   bench/run-db.sh                 # MariaDB/MySQL at 127.0.0.1:3306 as root; about 2 minutes
#   PG=1 bench/run-db.sh            # also PostgreSQL at 127.0.0.1:5432
#   DURATION=5s bench/run-db.sh     # shorter
#   NO_DOC=1 bench/run-db.sh        # print the figures, leave the doc alone
#
# In one run, on a fresh database (created here, dropped at the end), for each database:
#   1. `seata-bench db-probe --shape seata`: the rows of AT transactions with 2 branches written
#      as seata-server's db mode writes them (one autocommit statement at a time);
#   2. `seata-bench db-probe --shape batched` with 1 and 2 writers: the same rows, every worker's
#      pending step in one transaction of multi-row statements per commit; the better of the two
#      is the batched ceiling;
#   3. seata-server in db mode on that database, AT with 2 branches;
#   4. two seata-server nodes (different -n and ports) on the same database, the bench's
#      connections spread over both;
# then a table with server ÷ batched ceiling (target ≥ 70 %) and server ÷ seata-shaped probe
# (target ≥ 5×). Client, server and database share the machine.
#
# Environment: MYSQL_HOST (127.0.0.1), MYSQL_PORT (3306), MYSQL_USER (root), MYSQL_PWD (empty);
# PG_HOST, PG_PORT (5432), PG_USER (root), PGPASSWORD. Needs: bash, cargo, jq, awk, the mysql
# client (and psql with PG=1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-32}
BRANCHES=2
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_USER=${MYSQL_USER:-root}
export MYSQL_PWD=${MYSQL_PWD:-}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-root}

command -v jq >/dev/null || { echo "run-db.sh: jq is needed (apt-get install jq)" >&2; exit 2; }
command -v mysql >/dev/null || { echo "run-db.sh: the mysql client is needed" >&2; exit 2; }
if [ -n "${PG:-}" ]; then
    command -v psql >/dev/null || { echo "run-db.sh: psql is needed with PG=1" >&2; exit 2; }
fi

WORK=$(mktemp -d)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
DBNAME=seata_bench_$$
PIDS=()
DATABASES=()
my() { mysql -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" "$@"; }
pg() { psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for d in "${DATABASES[@]}"; do
        case $d in
            mysql) my -e "DROP DATABASE IF EXISTS $DBNAME" || true ;;
            postgres) pg -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" || true ;;
        esac
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

build_bins


# start_node NAME NODE_ID DBTYPE JDBC_URL USER: a server in db mode. Sets NODE_PID, NODE_PORT.
start_node() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    NODE_PORT=$(free_port 38191)
    local console
    console=$(free_port $((NODE_PORT + 1)))
    local metrics
    metrics=$(free_port $((console + 1)))
    cat >"$dir/application.yml" <<EOF
server:
  port: $console
seata:
  metrics:
    exporter-prometheus-port: $metrics
  store:
    mode: db
    db:
      db-type: $3
      url: $4
      user: $5
      create-missing-tables: true
EOF
    (cd "$dir" && exec env NO_COLOR=1 "$BIN/seata-server" -h 127.0.0.1 -p "$NODE_PORT" -n "$2" \
        --config "$dir/application.yml" >"$dir/server.log" 2>&1) &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    until accepts "$NODE_PORT"; do
        if ! kill -0 "$NODE_PID" 2>/dev/null; then
            echo "run-db.sh: the server died; its log:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
        sleep 0.02
    done
}
stop_node() {
    kill -TERM "$1"
    wait "$1" 2>/dev/null || true
}

json() { # NAME ARGS...: runs seata-bench, keeps its JSON in $WORK/NAME.json
    local name=$1
    shift
    echo "== $name: seata-bench $*   (load $(load1))" >&2
    "$BIN/seata-bench" "$@" --json >"$WORK/$name.json"
    jq -c '{tx_per_s, p50_us, p99_us, errors_total, statements_per_tx, commits_per_tx}' "$WORK/$name.json" >&2
}

COMMON=(--conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --branches "$BRANCHES")

# measure DB: probes, one node, two nodes, on a fresh database of that kind.
measure() {
    local db=$1 url jdbc user dbtype
    case $db in
        mysql)
            my -e "CREATE DATABASE $DBNAME"
            DATABASES+=(mysql)
            user=$MYSQL_USER
            url="mysql://$MYSQL_USER@$MYSQL_HOST:$MYSQL_PORT/$DBNAME"
            jdbc="jdbc:mysql://$MYSQL_HOST:$MYSQL_PORT/$DBNAME?rewriteBatchedStatements=true"
            dbtype=mysql
            ;;
        postgres)
            pg -c "CREATE DATABASE $DBNAME"
            DATABASES+=(postgres)
            user=$PG_USER
            url="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DBNAME"
            jdbc="jdbc:postgresql://$PG_HOST:$PG_PORT/$DBNAME"
            dbtype=postgresql
            ;;
    esac
    json "$db-probe-seata" db-probe --url "$url" --shape seata "${COMMON[@]}"
    # The batched ceiling is the better of one writer (as the server's store has) and two.
    json "$db-probe-batched1" db-probe --url "$url" --shape batched --writers 1 "${COMMON[@]}"
    json "$db-probe-batched2" db-probe --url "$url" --shape batched --writers 2 "${COMMON[@]}"
    if awk -v a="$(j "$db-probe-batched1" .tx_per_s)" -v b="$(j "$db-probe-batched2" .tx_per_s)" 'BEGIN { exit !(a >= b) }'; then
        cp "$WORK/$db-probe-batched1.json" "$WORK/$db-probe-batched.json"
    else
        cp "$WORK/$db-probe-batched2.json" "$WORK/$db-probe-batched.json"
    fi

    start_node "$db-node1" 1 "$dbtype" "$jdbc" "$user"
    local n1=$NODE_PID p1=$NODE_PORT
    sleep 1
    json "$db-server" --addr "127.0.0.1:$p1" "${COMMON[@]}" --mode at --server-pid "$n1"

    start_node "$db-node2" 2 "$dbtype" "$jdbc" "$user"
    local n2=$NODE_PID p2=$NODE_PORT
    sleep 1
    json "$db-server2" --addr "127.0.0.1:$p1,127.0.0.1:$p2" "${COMMON[@]}" --mode at
    stop_node "$n2"
    stop_node "$n1"
}

measure mysql
MYSQL_VERSION=$(my -N -e "SELECT VERSION()")
MYSQL_FLUSH=$(my -N -e "SELECT @@innodb_flush_log_at_trx_commit")
MYSQL_BINLOG=$(my -N -e "SELECT @@log_bin")
if [ -n "${PG:-}" ]; then
    measure postgres
    PG_VERSION=$(pg -t -A -c "SHOW server_version")
    PG_SYNC=$(pg -t -A -c "SHOW synchronous_commit")
fi

# ---- figures -------------------------------------------------------------------------------
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; }
times() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
row() { # NAME LABEL
    jq -r --arg name "$2" '
      def ms: (. / 1000 * 100 | round / 100);
      def n: if . == null then "–" else . end;
      def cpu(u): if u == null then "–" else "\(u.cores) / \(u.cpu_us_per_op | round)" end;
      "| \($name) | \(.tx_per_s | round) | \(.p50_us | ms) | \(.p99_us | ms) | \(.errors_total) | \(.statements_per_tx | n) | \(.commits_per_tx | n) | \(cpu(.client)) | \(cpu(.server)) | \(.load_avg[0]) |"' "$WORK/$1.json"
}

SECTION=$WORK/section.md
{
    echo "<!-- run-db.sh:begin (generated by bench/run-db.sh; edits here are overwritten) -->"
    echo "## db mode, measured by \`bench/run-db.sh\`"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`."
    machine
    echo "MariaDB/MySQL $MYSQL_VERSION (\`innodb_flush_log_at_trx_commit=$MYSQL_FLUSH\`, \`log_bin=$MYSQL_BINLOG\`)${PG:+, PostgreSQL $PG_VERSION (\`synchronous_commit=$PG_SYNC\`)},"
    echo "on the same machine as client and server, over 127.0.0.1; a fresh database per run. The"
    echo "1-minute load average at the end of each run is in the last column."
    echo
    echo "Commands (\`URL\` is the fresh database, \`PORT\`, \`PORT2\` the nodes' ports):"
    echo
    echo '```sh'
    echo "seata-bench db-probe --url URL --shape seata --conns $CONNS --duration $DURATION --warmup $WARMUP --branches $BRANCHES"
    echo "seata-bench db-probe --url URL --shape batched --writers 1 --conns $CONNS --duration $DURATION --warmup $WARMUP --branches $BRANCHES"
    echo "seata-bench db-probe --url URL --shape batched --writers 2 --conns $CONNS --duration $DURATION --warmup $WARMUP --branches $BRANCHES"
    echo "seata-server -h 127.0.0.1 -p PORT -n 1 --config application.yml    # store.mode: db, store.db.url: URL"
    echo "seata-bench --addr 127.0.0.1:PORT --conns $CONNS --duration $DURATION --warmup $WARMUP --branches $BRANCHES --mode at"
    echo "seata-server -h 127.0.0.1 -p PORT2 -n 2 --config application.yml   # a second node, same database"
    echo "seata-bench --addr 127.0.0.1:PORT,127.0.0.1:PORT2 --conns $CONNS --duration $DURATION --warmup $WARMUP --branches $BRANCHES --mode at"
    echo '```'
    echo
    echo "| database | run | tx/s | p50 ms | p99 ms | errors | statements per tx | commits per tx | client cores / µs per tx | server cores / µs per tx | load |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for db in mysql ${PG:+postgres}; do
        label=MariaDB
        [ "$db" = postgres ] && label=PostgreSQL
        row "$db-probe-seata" "$label | probe, seata-server's statements"
        row "$db-probe-batched1" "$label | probe, batched, 1 writer"
        row "$db-probe-batched2" "$label | probe, batched, 2 writers"
        row "$db-server" "$label | seata-server, 1 node"
        row "$db-server2" "$label | seata-server, 2 nodes"
    done
    echo
    echo "Latency by step (ms; probes: \`begin\`, \`register\` (each), \`commit\` as the worker waits for"
    echo "them, \`end\` the asynchronous removal; server: the RPCs as the client sees them):"
    echo
    echo "| run | kind | count | p50 | p99 | p99.9 |"
    echo "| --- | --- | ---: | ---: | ---: | ---: |"
    for db in mysql ${PG:+postgres}; do
        for r in probe-seata probe-batched1 probe-batched2 server server2; do
            jq -r --arg run "$db-$r" 'def ms: (. / 1000 * 100 | round / 100);
              .latency_us | to_entries[] | select(.key | test("^(tx|begin|register|commit|end)$")) |
              "| \($run) | \(.key) | \(.value.count) | \(.value.p50_us | ms) | \(.value.p99_us | ms) | \(.value.p999_us | ms) |"' "$WORK/$db-$r.json"
        done
    done
    echo
    echo "| target (AT, $BRANCHES branches, $CONNS conns) | measured | holds? |"
    echo "| --- | --- | --- |"
    for db in mysql ${PG:+postgres}; do
        label=MariaDB
        [ "$db" = postgres ] && label=PostgreSQL
        S=$(j "$db-probe-seata" .tx_per_s)
        B=$(j "$db-probe-batched" .tx_per_s)
        for r in server server2; do
            T=$(j "$db-$r" .tx_per_s)
            nodes="1 node"
            [ "$r" = server2 ] && nodes="2 nodes"
            echo "| $label, $nodes: ≥ 70 % of the batched ceiling, the better batched probe ($(printf '%.0f' "$B") tx/s) | $(printf '%.0f' "$T") tx/s = $(pct "$T" "$B") % | $(yes_no "$T >= 0.7 * $B") |"
            echo "| $label, $nodes: ≥ 5 × the seata-shaped probe ($(printf '%.0f' "$S") tx/s) | $(times "$T" "$S") × | $(yes_no "$T >= 5 * $S") |"
        done
    done
    echo "<!-- run-db.sh:end -->"
} >"$SECTION"

cat "$SECTION"
for f in "$WORK"/*.json; do
    echo "$(basename "$f" .json): $(cat "$f")" >&2
done
splice_section run-db.sh "$SECTION"
