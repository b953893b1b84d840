//! The network side: the listener, one task pair per connection, the channel registry, and the
//! TC's own requests to RMs (BranchCommit, BranchRollback, UndoLogDelete).
//!
//! Everything is bounded: connections (a semaphore), frame size (the codec), requests in flight
//! per connection, the write queue of each connection, and the wait for an RM's answer.

mod auth;
mod channels;
mod connection;
mod dispatch;
mod server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seata_protocol::frame::msg_type;
use seata_protocol::message::{BranchEndRequest, BranchEndResponse, UndoLogDeleteRequest};
use seata_protocol::{BranchStatus, BranchType, CodecContext, Frame, Message};
use tokio::sync::oneshot;
use tracing::debug;

pub use auth::{ram_sign, AuthConfig, AuthError};
pub use channels::{Channels, Conn, Registration};
pub use server::{serve, ServerState};

use crate::coordinator::{BranchCall, Phase2, ResourceManagers, SendError};

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Most connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Largest frame accepted or sent.
    pub max_frame_len: usize,
    /// Close a connection that sent nothing for this long (Seata: 15 s).
    pub idle_timeout: Duration,
    /// How long the TC waits for an RM's phase-two answer (`transport.rpcTcRequestTimeout`).
    pub rpc_tc_request_timeout: Duration,
    /// Answer merged requests of ≥ 1.5.0 clients with BatchResultMessage
    /// (`transport.enableTcServerBatchSendResponse`).
    pub batch_response: bool,
    /// Requests of one connection handled at once; further frames wait (back-pressure).
    pub max_in_flight_per_connection: usize,
    /// Frames queued for writing per connection.
    pub write_queue: usize,
    /// The version string sent in registration answers.
    pub server_version: String,
    /// Handle the sub-requests of a merged request in parallel (`enableParallelRequestHandle`).
    pub parallel_merged: bool,
    /// Registration auth.
    pub auth: AuthConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_connections: 10_000,
            max_frame_len: seata_protocol::frame::DEFAULT_MAX_FRAME_LEN,
            idle_timeout: Duration::from_secs(15),
            rpc_tc_request_timeout: Duration::from_secs(15),
            batch_response: false,
            max_in_flight_per_connection: 256,
            write_queue: 1024,
            server_version: "2.2.0".into(),
            parallel_merged: true,
            auth: AuthConfig::default(),
        }
    }
}

/// Connections plus the TC's outbound requests. Implements [`ResourceManagers`] for the
/// coordinator.
#[derive(Debug)]
pub struct Transport {
    cfg: TransportConfig,
    channels: Channels,
    next_id: AtomicU32,
    /// Server-wide: an RM may answer on another connection than the request went out on
    /// (PROTOCOL.md §6.7).
    pending: crate::fasthash::DashMap<u32, oneshot::Sender<BranchEndResponse>>,
}

impl Transport {
    /// A transport with no connections yet.
    pub fn new(cfg: TransportConfig) -> Arc<Self> {
        Arc::new(Transport {
            cfg,
            channels: Channels::default(),
            next_id: AtomicU32::new(0),
            pending: crate::fasthash::dashmap(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &TransportConfig {
        &self.cfg
    }

    /// The channel registry.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// A fresh request id, positive and 31-bit like Java's.
    fn next_request_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & 0x7fff_ffff;
            if id != 0 {
                return id;
            }
        }
    }

    /// Completes a pending phase-two request; false when nobody waits for `id`.
    pub(crate) fn complete(&self, id: u32, resp: BranchEndResponse) -> bool {
        match self.pending.remove(&id) {
            Some((_, tx)) => tx.send(resp).is_ok(),
            None => false,
        }
    }

    /// Phase-two requests waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }
}

/// Removes a pending entry when the waiting future is dropped or times out.
struct PendingGuard<'a> {
    transport: &'a Transport,
    id: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.transport.pending.remove(&self.id);
    }
}

#[async_trait::async_trait]
impl ResourceManagers for Transport {
    async fn send_phase2(&self, phase: Phase2, call: BranchCall) -> Result<BranchStatus, SendError> {
        let conn = self.channels.select(&call.resource_id, &call.client_id, call.branch_type).ok_or_else(|| {
            SendError::NoChannel { resource_id: call.resource_id.clone(), client_id: call.client_id.clone() }
        })?;
        let req = BranchEndRequest {
            xid: call.xid,
            branch_id: call.branch_id,
            branch_type: call.branch_type,
            resource_id: call.resource_id,
            application_data: call.application_data,
        };
        let msg = match phase {
            Phase2::Commit => Message::BranchCommitRequest(req),
            Phase2::Rollback => Message::BranchRollbackRequest(req),
        };
        let id = self.next_request_id();
        let frame = Frame::with_message(msg_type::REQUEST, id, &msg, &CodecContext::default(), 0)
            .map_err(|e| SendError::Connection(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, tx);
        let _guard = PendingGuard { transport: self, id };
        let wait = self.cfg.rpc_tc_request_timeout;
        let exchange = async {
            conn.tx.send(frame).await.map_err(|_| SendError::Connection("connection closed".into()))?;
            rx.await.map_err(|_| SendError::Connection("request abandoned".into()))
        };
        let resp = tokio::time::timeout(wait, exchange).await.map_err(|_| SendError::Timeout(wait))??;
        debug!(xid = %resp.xid, branch_id = resp.branch_id, status = %resp.branch_status, ?phase, "phase two answered");
        Ok(resp.branch_status)
    }

    fn undo_log_delete(&self, save_days: i16) -> usize {
        let mut sent = 0;
        for (resource_id, conn) in self.channels.one_per_resource() {
            let msg = Message::UndoLogDeleteRequest(UndoLogDeleteRequest {
                branch_type: BranchType::AT,
                resource_id,
                save_days,
            });
            let id = self.next_request_id();
            if let Ok(frame) = Frame::with_message(msg_type::ONEWAY, id, &msg, &CodecContext::default(), 0) {
                if conn.tx.try_send(frame).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    }
}
