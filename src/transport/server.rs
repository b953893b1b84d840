//! The accept loop with its connection cap, and graceful shutdown (STYLE.md §5).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::connection;
use super::Transport;
use crate::coordinator::Coordinator;

/// What every connection task shares.
#[derive(Clone)]
pub struct ServerState {
    /// The TC rules.
    pub coordinator: Coordinator,
    /// Connections and outbound requests.
    pub transport: Arc<Transport>,
    /// Request latencies and transaction outcomes, when metrics are kept.
    pub metrics: Option<Arc<crate::console::Metrics>>,
}

const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` until `shutdown` completes, then stops accepting, lets the
/// connections finish the requests in hand (up to `drain`), and returns.
pub async fn serve(listener: TcpListener, state: ServerState, shutdown: impl Future<Output = ()>, drain: Duration) {
    let token = CancellationToken::new();
    let tasks = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(state.transport.config().max_connections.max(1)));
    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((sock, peer)) => {
                    let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                        warn!(%peer, "connection limit reached; closing the new connection");
                        drop(sock);
                        continue;
                    };
                    let _ = sock.set_nodelay(true);
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let state = state.clone();
                    let child = token.child_token();
                    tasks.spawn(
                        async move {
                            connection::run(sock, peer, id, state, child).await;
                            drop(permit);
                        }
                        .instrument(tracing::info_span!("conn", %peer)),
                    );
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    info!("shutting down: no new connections; finishing requests in hand");
    drop(listener);
    token.cancel();
    tasks.close();
    if tokio::time::timeout(drain, tasks.wait()).await.is_err() {
        warn!("drain deadline passed with connections still open");
    }
}
