//! One TC node assembled from its parts: store, transport, coordinator, recovery jobs and the
//! listener. `main` and the integration tests both start nodes through here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::store::{SessionStore, StoreError};
use crate::transport::{serve, ServerState, Transport, TransportConfig};

/// What a node needs besides its store.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Coordinator settings (XID address, retries, limits).
    pub coordinator: CoordinatorConfig,
    /// Transport settings.
    pub transport: TransportConfig,
    /// How long shutdown waits for requests in hand and phase two in flight.
    pub drain: Option<Duration>,
}

/// A running (or ready to run) TC node.
#[derive(Clone)]
pub struct Node {
    /// The TC rules.
    pub coordinator: Coordinator,
    /// Connections and outbound requests.
    pub transport: Arc<Transport>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::console::Metrics>,
    store: Arc<dyn SessionStore>,
    drain: Duration,
}

impl Node {
    /// Builds a node over `store` (row locks in memory) and reloads every unfinished session.
    pub async fn start(opts: NodeOptions, store: Arc<dyn SessionStore>) -> Result<Node, StoreError> {
        Self::start_with(opts, store, Arc::new(crate::lock::LockTable::new())).await
    }

    /// Builds a node over `store` with row locks in `locks` (Seata's `lock_table` in db mode).
    pub async fn start_with(
        opts: NodeOptions,
        store: Arc<dyn SessionStore>,
        locks: Arc<dyn crate::lock::LockStore>,
    ) -> Result<Node, StoreError> {
        let metrics = crate::console::Metrics::new();
        let store = metrics.instrument_store(store);
        let transport = Transport::new(opts.transport);
        let rms: Arc<dyn crate::coordinator::ResourceManagers> = transport.clone();
        let clock = crate::coordinator::system_clock();
        let coordinator = Coordinator::with_parts(opts.coordinator, Arc::clone(&store), locks, rms, clock);
        coordinator.recover().await?;
        Ok(Node { coordinator, transport, metrics, store, drain: opts.drain.unwrap_or(Duration::from_secs(3)) })
    }

    /// Serves `listener` until `shutdown` completes; then stops accepting, finishes the requests
    /// in hand, waits for phase two in flight, and closes the store (which flushes it).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let jobs_stop = CancellationToken::new();
        let jobs = {
            let c = self.coordinator.clone();
            let stop = jobs_stop.clone();
            tokio::spawn(crate::recovery::run(c, stop))
        };
        let state = ServerState {
            coordinator: self.coordinator.clone(),
            transport: Arc::clone(&self.transport),
            metrics: Some(Arc::clone(&self.metrics)),
        };
        serve(listener, state, shutdown, self.drain).await;
        jobs_stop.cancel();
        let _ = jobs.await;
        if !self.coordinator.drain(self.drain).await {
            warn!("phase two still in flight at shutdown; it resumes after restart");
        }
        self.store.close().await?;
        info!("stopped");
        Ok(())
    }
}

impl NodeOptions {
    /// The node settings Seata's configuration asks for.
    pub fn from_settings(s: &crate::config::Settings) -> NodeOptions {
        let srv = &s.server;
        let rec = &srv.recovery;
        let period = [
            rec.committing_retry_period,
            rec.async_committing_retry_period,
            rec.rollbacking_retry_period,
            rec.timeout_retry_period,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(10));
        let coordinator = CoordinatorConfig {
            host: s.host.clone(),
            port: s.service_port,
            server_node: s.server_node,
            max_commit_retry_timeout: srv.max_commit_retry_timeout,
            max_rollback_retry_timeout: srv.max_rollback_retry_timeout,
            rollback_retry_timeout_unlock: srv.rollback_retry_timeout_unlock_enable,
            dead_threshold: srv.retry_dead_threshold,
            xaer_nota_retry_timeout: srv.xaer_nota_retry_timeout,
            application_data_limit: srv.application_data_limit,
            application_data_limit_check: srv.application_data_limit_check,
            recovery_period: period,
            undo_log_save_days: i16::try_from(srv.undo.log_save_days).unwrap_or(i16::MAX),
            undo_log_delete_period: srv.undo.log_delete_period,
            max_sessions_per_application: srv.max_sessions_per_application,
            query_limit: usize::try_from(s.store.db.query_limit).unwrap_or(1000),
            rpc_timeout: s.transport.rpc_tc_request_timeout,
            ..CoordinatorConfig::default()
        };
        let t = &s.transport;
        let transport = TransportConfig {
            max_connections: t.limits.max_connections,
            max_frame_len: t.limits.max_frame_length,
            idle_timeout: t.limits.idle_timeout,
            rpc_tc_request_timeout: t.rpc_tc_request_timeout,
            batch_response: t.enable_tc_server_batch_send_response,
            parallel_merged: srv.enable_parallel_request_handle,
            auth: crate::transport::AuthConfig {
                enabled: srv.enable_check_auth,
                access_key: srv.auth.access_key.clone(),
                secret_key: srv.auth.secret_key.as_ref().map(|s| s.expose().to_owned()),
                max_clock_skew: srv.auth.max_clock_skew,
            },
            ..TransportConfig::default()
        };
        NodeOptions { coordinator, transport, drain: Some(t.shutdown_wait.min(Duration::from_secs(30))) }
    }
}
