#!/usr/bin/env bash
# The whole test suite: format, lints, every test of the workspace.
# Installs and starts what the tests need when it is missing (rustfmt/clippy, MariaDB, PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

ensure_rust_components() {
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    log "installing rustfmt and clippy"
    rustup component add rustfmt clippy
  fi
}

# Database servers for the db-mode tests (store.mode: db). Started if installed but stopped,
# installed from Debian's packages if absent.
# The binaries are needed even when a server is already running: tests/db_outage.rs starts
# (and kills) MariaDB servers of its own.
ensure_mariadb() {
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    log "installing MariaDB"
    apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null
  fi
  if mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then return; fi
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=root || true
  for _ in $(seq 1 60); do mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && return; sleep 0.5; done
  echo "MariaDB did not start" >&2
  return 1
}

ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && return; sleep 0.5; done
  echo "PostgreSQL did not start" >&2
  return 1
}

ensure_rust_components
if [ "${SEATA_TEST_NO_DB:-}" != "1" ]; then
  if ! ensure_mariadb; then [ "${CI:-}" = "true" ] && exit 1; fi
  if ! ensure_postgres; then [ "${CI:-}" = "true" ] && exit 1; fi
  export SEATA_TEST_MYSQL_URL="${SEATA_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
  export SEATA_TEST_POSTGRES_URL="${SEATA_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
fi

# The console's end-to-end test drives Debian's Chromium with playwright-core.
if [ "${SEATA_TEST_NO_BROWSER:-}" != "1" ]; then
  if tests/browser/setup.sh; then
    export SEATA_BROWSER_TEST=1
  elif [ "${CI:-}" = "true" ]; then
    echo "browser test setup failed" >&2
    exit 1
  fi
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
cargo test --workspace --all-targets
cargo test --workspace --doc
