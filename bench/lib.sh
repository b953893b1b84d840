# Helpers shared by bench/run.sh and bench/run-db.sh (sourced, not run). Expects $WORK (a scratch
# directory) and $ROOT (the repository) to be set by the caller.

now_ms() { local t=$EPOCHREALTIME; echo "${t/./}" | awk '{ printf "%.1f", $1 / 1000 }'; }
accepts() { { : >"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; }
# free_port BASE: the first port from BASE on that nothing accepts on.
free_port() {
    local p
    for p in $(seq "$1" $(($1 + 500))); do
        if ! accepts "$p"; then echo "$p"; return; fi
    done
    echo "$(basename "$0"): no free port near $1" >&2
    exit 1
}
load1() { cut -d' ' -f1 /proc/loadavg; }
# j NAME FILTER: a field of the JSON line seata-bench left in $WORK/NAME.json.
j() { jq -r "$2" "$WORK/$1.json"; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
yes_no() { if awk "BEGIN { exit !($1) }"; then echo "**holds**"; else echo "**missed**"; fi; }
# machine: one line naming the machine, for the generated sections.
machine() {
    local cpu mem
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "Machine: $(nproc) × $cpu, $mem, Linux $(uname -r), $(rustc --version | cut -d' ' -f1-2)."
}
# splice_section MARKER FILE: puts FILE between the "<!-- MARKER:begin" and "<!-- MARKER:end -->"
# lines of docs/PERFORMANCE.md (appended when the markers are missing), unless NO_DOC is set.
splice_section() {
    [ -n "${NO_DOC:-}" ] && return
    local doc=$ROOT/docs/PERFORMANCE.md
    [ -f "$doc" ] || printf '# Performance\n\n' >"$doc"
    if grep -q "<!-- $1:begin" "$doc"; then
        awk -v sec="$2" -v begin="<!-- $1:begin" -v end="<!-- $1:end -->" '
          index($0, begin) == 1 { while ((getline l < sec) > 0) print l; skip = 1; next }
          index($0, end) == 1 { skip = 0; next }
          !skip { print }' "$doc" >"$WORK/doc.md"
        cat "$WORK/doc.md" >"$doc"
    else
        { echo; cat "$2"; } >>"$doc"
    fi
    echo "== wrote $doc" >&2
}
# build_bins: a release build, copied to $WORK/bin at once (the target directory may be rebuilt
# while a script runs); sets BIN.
build_bins() {
    echo "== build (release)" >&2
    cargo build --release --quiet --bin seata-server --bin seata-bench
    mkdir -p "$WORK/bin"
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    cp "$target/release/seata-server" "$target/release/seata-bench" "$WORK/bin/"
    BIN=$WORK/bin
}
