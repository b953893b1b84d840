//! The coordinator's view of the resource managers: "send this branch its phase two and tell me
//! the status it reports". The transport implements it over the RM connections; tests use fakes.

use seata_protocol::{BranchStatus, BranchType};

/// Everything an RM needs to finish one branch (a BranchCommit or BranchRollback request), and
/// what the transport needs to pick the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchCall {
    /// The global transaction.
    pub xid: String,
    /// The branch (-1 for a SAGA phase two).
    pub branch_id: i64,
    /// The branch type (decides whether another application may answer for an AT resource).
    pub branch_type: BranchType,
    /// The resource that owns the branch.
    pub resource_id: String,
    /// `applicationId:ip:port` of the connection that registered the branch.
    pub client_id: String,
    /// Stored application data, echoed to the RM.
    pub application_data: String,
}

/// Phase two direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase2 {
    /// BranchCommit (code 3).
    Commit,
    /// BranchRollback (code 5).
    Rollback,
}

/// Why a phase-two request got no usable answer. Every case is retried later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No live RM connection registered the resource (TC-BEHAVIOR §6.2 step 6).
    #[error("no RM channel for resource {resource_id} (client {client_id})")]
    NoChannel {
        /// The resource.
        resource_id: String,
        /// The registering client.
        client_id: String,
    },
    /// The RM did not answer in time.
    #[error("RM did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection closed or could not take the request.
    #[error("RM connection failed: {0}")]
    Connection(String),
}

/// Sends phase-two requests to RMs.
#[async_trait::async_trait]
pub trait ResourceManagers: Send + Sync + 'static {
    /// Sends a BranchCommit or BranchRollback and returns the branch status the RM reports.
    async fn send_phase2(&self, phase: Phase2, call: BranchCall) -> Result<BranchStatus, SendError>;

    /// Sends a one-way UndoLogDelete to one live connection of every registered resource;
    /// returns how many were sent.
    fn undo_log_delete(&self, save_days: i16) -> usize;
}
