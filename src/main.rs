//! `seata-server`: command line (Seata's flags), configuration, logging, then the node.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use seata_server::app::{Node, NodeOptions};
use seata_server::config::{self, Cli, LogFormat, Settings, StoreMode};
use seata_server::console::{self, ConsoleConfig, ConsoleState};
use seata_server::lock::{LockStore, LockTable};
use seata_server::store::db::{DbLockStore, DbOptions, DbPool, DbStore};
use seata_server::store::{FileStore, FileStoreOptions, SessionStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

// jemalloc returns freed memory to the system and fragments far less than glibc's malloc under
// many small, short-lived allocations: with 100 000 open transactions the resident size is less
// than half (docs/PERFORMANCE.md, "Memory of open transactions").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::parse_from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let settings = match config::load(&cli, &config::process_env()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("seata-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "could not start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(s: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(s.log.level.as_str()));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    match s.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The session store and the lock store the configuration asks for (`store.session.mode`,
/// `store.lock.mode`); in db mode they share one connection pool.
async fn open_stores(s: &Settings) -> anyhow::Result<(Arc<dyn SessionStore>, Arc<dyn LockStore>)> {
    let db = &s.store.db;
    let opts = DbOptions { create_missing_tables: db.create_missing_tables, ..DbOptions::default() };
    let pool = if s.store.uses_db() {
        let pool = DbPool::connect(db, &opts).await.context("connecting to the database (seata.store.db.*)")?;
        info!(url = %pool.url(), "database connected");
        Some(pool)
    } else {
        None
    };
    let db_locks = match (s.store.lock_mode, &pool) {
        (StoreMode::Db, Some(pool)) => {
            Some(DbLockStore::open(pool.clone(), &opts).await.context("opening the db lock store")?)
        }
        _ => None,
    };
    let sessions: Arc<dyn SessionStore> = match (s.store.session_mode, &pool, &db_locks) {
        // Sessions and locks in one database: a registration's lock rows and branch row, and a
        // commit's status and lock release, are each one transaction.
        (StoreMode::Db, Some(pool), Some(locks)) => Arc::new(
            DbStore::open_with_locks(pool.clone(), opts.clone(), locks)
                .await
                .context("opening the db session store")?,
        ),
        (StoreMode::Db, Some(pool), None) => {
            Arc::new(DbStore::open(pool.clone(), opts.clone()).await.context("opening the db session store")?)
        }
        _ => {
            let dir = &s.store.file.dir;
            let store = FileStore::open(dir, FileStoreOptions::default())
                .await
                .with_context(|| format!("opening the file store in {}", dir.display()))?;
            info!(path = %store.path().display(), "file store opened");
            Arc::new(store)
        }
    };
    let locks: Arc<dyn LockStore> = match db_locks {
        Some(locks) => Arc::new(locks),
        None => Arc::new(LockTable::new()),
    };
    Ok((sessions, locks))
}

async fn run(settings: Settings, started: Instant) -> anyhow::Result<()> {
    for k in &settings.ignored_keys {
        info!(key = %k, "configuration key accepted but not acted on");
    }
    let (store, locks) = open_stores(&settings).await?;
    let bind = format!("0.0.0.0:{}", settings.service_port);
    let listener = TcpListener::bind(&bind).await.with_context(|| format!("binding {bind}"))?;
    let node =
        Node::start_with(NodeOptions::from_settings(&settings), store, locks).await.context("recovering sessions")?;

    // The console (HTTP API, web page, /metrics, /health) on server.port, and Seata's Prometheus
    // exporter port when metrics are enabled.
    let stop = CancellationToken::new();
    let console_cfg = ConsoleConfig::from_settings(&settings);
    let exporter_port = console_cfg.exporter_port;
    let console = ConsoleState::new(node.coordinator.clone(), Arc::clone(&node.transport), console_cfg)
        .with_metrics(Arc::clone(&node.metrics));
    for w in console.warnings() {
        warn!("{w}");
    }
    let http = format!("0.0.0.0:{}", settings.server_port);
    let http_listener = TcpListener::bind(&http).await.with_context(|| format!("binding the console on {http}"))?;
    let mut side = tokio::task::JoinSet::new();
    {
        let (state, stop) = (console.clone(), stop.clone());
        side.spawn(async move { console::serve(http_listener, state, async move { stop.cancelled().await }).await });
    }
    if let Some(port) = exporter_port.filter(|p| *p != settings.server_port) {
        let addr = format!("0.0.0.0:{port}");
        let l = TcpListener::bind(&addr).await.with_context(|| format!("binding the metrics exporter on {addr}"))?;
        let (state, stop) = (console.clone(), stop.clone());
        side.spawn(async move { console::serve_exporter(l, state, async move { stop.cancelled().await }).await });
    }
    info!(
        address = %bind,
        xid_address = %format!("{}:{}", settings.host, settings.service_port),
        node = settings.server_node,
        store = settings.store.session_mode.as_str(),
        console = %http,
        startup_ms = started.elapsed().as_millis(),
        "seata-server listening"
    );
    let signal = {
        let (stop, console) = (stop.clone(), console.clone());
        async move {
            shutdown_signal().await;
            console.set_ready(false);
            stop.cancel();
        }
    };
    let served = node.serve(listener, signal).await;
    stop.cancel();
    while let Some(r) = side.join_next().await {
        if let Ok(Err(e)) = r {
            warn!(error = %e, "console stopped with an error");
        }
    }
    served.context("closing the store")?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "SIGTERM handler unavailable");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("SIGINT received"),
        () = term => info!("SIGTERM received"),
    }
}
