//! placeholder
pub mod error;
pub mod model;
pub mod version;
pub use error::ProtocolError;
pub use model::{BranchStatus, BranchType, CodeTable, ExceptionCode, GlobalStatus, ResultCode};
pub use version::Version;
