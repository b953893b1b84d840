//! Coordinator errors and how they become Seata's result codes (TC-BEHAVIOR §0.6).

use seata_protocol::message::ResultHead;
use seata_protocol::{ExceptionCode, GlobalStatus};

use crate::lock::LockError;
use crate::store::StoreError;

/// Why a request failed. `Display` is sent to clients, so it names only what the client sent.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// BranchRegister/BranchReport for an XID the TC does not know.
    #[error("Could not found global transaction xid = {0}, may be has finished.")]
    GlobalNotFound(String),
    /// The session no longer accepts branches (a commit or rollback started).
    #[error("Could not register branch into global session xid = {0} status = {1}, cause by globalSession not active")]
    NotActive(String, GlobalStatus),
    /// The session is not in Begin.
    #[error("Could not register branch into global session xid = {0} status = {1} while expecting Begin")]
    StatusInvalid(String, GlobalStatus),
    /// BranchReport for an unknown branch.
    #[error("Could not found branch session xid = {0} branchId = {1}")]
    BranchNotFound(String, i64),
    /// Row locks held by another transaction, or too many rows.
    #[error("{0}")]
    Lock(#[from] LockError),
    /// applicationData over `server.applicationDataLimit` with the check enabled.
    #[error("applicationData is too large: {0} bytes, limit {1}")]
    ApplicationDataTooLarge(usize, usize),
    /// The branch row could not be written.
    #[error("Failed to store branch xid = {0}")]
    FailedToAddBranch(String, #[source] StoreError),
    /// Another request holds the session for too long.
    #[error("Could not lock global transaction xid = {0}")]
    SessionBusy(String),
    /// The store failed.
    #[error("Failed to store global transaction")]
    Store(#[from] StoreError),
    /// Phase two could not reach an RM (the TM sees code Unknown, as with Seata).
    #[error("{0}")]
    Phase2(String),
}

impl TxError {
    /// The exception code sent to the client.
    pub fn code(&self) -> ExceptionCode {
        match self {
            TxError::GlobalNotFound(_) => ExceptionCode::GlobalTransactionNotExist,
            TxError::NotActive(..) => ExceptionCode::GlobalTransactionNotActive,
            TxError::StatusInvalid(..) => ExceptionCode::GlobalTransactionStatusInvalid,
            TxError::BranchNotFound(..) => ExceptionCode::BranchTransactionNotExist,
            TxError::Lock(e) => e.code(),
            TxError::ApplicationDataTooLarge(..) | TxError::FailedToAddBranch(..) => ExceptionCode::FailedToAddBranch,
            TxError::SessionBusy(_) => ExceptionCode::FailedLockGlobalTransaction,
            TxError::Store(_) => ExceptionCode::FailedStore,
            TxError::Phase2(_) => ExceptionCode::Unknown,
        }
    }

    /// The failed result block, with Seata's `TransactionException[...]` message.
    pub fn result_head(&self) -> ResultHead {
        ResultHead::failed(self.code(), format!("TransactionException[{self}]"))
    }
}
