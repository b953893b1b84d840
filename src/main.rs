//! `seata-server`: command line (Seata's flags), configuration, logging, then the node.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use seata_server::app::{Node, NodeOptions};
use seata_server::config::{self, Cli, LogFormat, Settings, StoreMode};
use seata_server::store::{FileStore, FileStoreOptions, SessionStore};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

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

async fn open_store(s: &Settings) -> anyhow::Result<Arc<dyn SessionStore>> {
    match s.store.session_mode {
        StoreMode::File => {
            let dir = &s.store.file.dir;
            let store = FileStore::open(dir, FileStoreOptions::default())
                .await
                .with_context(|| format!("opening the file store in {}", dir.display()))?;
            info!(path = %store.path().display(), "file store opened");
            Ok(Arc::new(store))
        }
        other => anyhow::bail!("store mode {} is not available in this build", other.as_str()),
    }
}

async fn run(settings: Settings, started: Instant) -> anyhow::Result<()> {
    for k in &settings.ignored_keys {
        info!(key = %k, "configuration key accepted but not acted on");
    }
    let store = open_store(&settings).await?;
    let bind = format!("0.0.0.0:{}", settings.service_port);
    let listener = TcpListener::bind(&bind).await.with_context(|| format!("binding {bind}"))?;
    let node = Node::start(NodeOptions::from_settings(&settings), store).await.context("recovering sessions")?;
    info!(
        address = %bind,
        xid_address = %format!("{}:{}", settings.host, settings.service_port),
        node = settings.server_node,
        store = settings.store.session_mode.as_str(),
        startup_ms = started.elapsed().as_millis(),
        "seata-server listening"
    );
    node.serve(listener, shutdown_signal()).await.context("closing the store")?;
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
