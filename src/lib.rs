//! A drop-in Apache Seata transaction coordinator (TC).
//!
//! Data flows one way (see `docs/ARCHITECTURE.md`):
//!
//! ```text
//! client socket -> transport -> coordinator -> session + lock -> store
//! ```
//!
//! * [`config`]: typed settings from Seata's `application.yml` keys, legacy `file.conf`, env and flags.
//! * [`transport`]: listener, connections, channel registry, outbound requests to RMs.
//! * [`coordinator`]: Seata's TC rules, typed request in, typed response out; no sockets, no SQL.
//! * [`session`]: global and branch sessions: plain data and status rules.
//! * [`lock`]: AT global row locks.
//! * [`store`]: the durable record of every state change (embedded file store, MySQL, PostgreSQL).
//! * [`recovery`]: the periodic jobs (async commit, retries, timeouts, undo-log delete).
//! * [`console`]: HTTP on `server.port`: Seata's console API, the web page, health and metrics.

pub mod app;
pub mod bench;
pub mod client;
pub mod config;
pub mod console;
pub mod coordinator;
pub mod fasthash;
#[doc(hidden)]
pub mod fuzzing;
pub mod lock;
pub mod recovery;
pub mod session;
pub mod store;
pub mod transport;
