//! The typed settings and their built-in defaults (Seata's defaults unless marked as an extension).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Origin;

/// Everything the server reads from its configuration, fully resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Console/HTTP port, `server.port` (default 7091).
    pub server_port: u16,
    /// RPC (TC) port: `-p` > `SEATA_PORT` > `seata.server.service-port` > `server.port + 1000`.
    pub service_port: u16,
    /// Address written into XIDs and announced to clients: `--host/-h` > `SEATA_IP` > the machine's
    /// first non-loopback IPv4 address > `127.0.0.1`. An IPv4 address or a host name, never IPv6
    /// (XIDs are `ip:port:id` and clients split them at `:`).
    pub host: String,
    /// Worker id for transaction and branch ids, 0..=1023: `-n` > `SERVER_NODE` > derived from
    /// `host:service_port`. Give every node of a cluster its own value.
    pub server_node: u16,
    /// `seata.server.*`: coordinator behaviour.
    pub server: ServerSettings,
    /// `seata.store.*`: where sessions and locks are kept.
    pub store: StoreSettings,
    /// `seata.transport.*`: the RPC transport.
    pub transport: TransportSettings,
    /// `seata.security.*`: console authentication.
    pub security: SecuritySettings,
    /// `console.user.*`: the console login.
    pub console: ConsoleSettings,
    /// `seata.metrics.*`: the Prometheus exporter.
    pub metrics: MetricsSettings,
    /// Log level and format.
    pub log: LogSettings,
    /// Seata keys that were accepted but are not acted on (config centres, registries, Spring, netty
    /// thread knobs, ...). The server logs them once at start-up.
    pub ignored_keys: Vec<IgnoredKey>,
    /// Configuration files that were read, lowest precedence first (empty when only the embedded
    /// default configuration was used).
    pub files: Vec<PathBuf>,
}

impl Default for Settings {
    /// Seata's built-in defaults, host `127.0.0.1`, node 0, no files read.
    fn default() -> Self {
        Self {
            server_port: 7091,
            service_port: 8091,
            host: "127.0.0.1".to_owned(),
            server_node: 0,
            server: ServerSettings::default(),
            store: StoreSettings::default(),
            transport: TransportSettings::default(),
            security: SecuritySettings::default(),
            console: ConsoleSettings::default(),
            metrics: MetricsSettings::default(),
            log: LogSettings::default(),
            ignored_keys: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// A Seata key that was accepted but is not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredKey {
    /// The key as written.
    pub key: String,
    /// Where it was written.
    pub origin: Origin,
}

impl fmt::Display for IgnoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.key, self.origin)
    }
}

/// `seata.server.*`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `max-commit-retry-timeout`: give up retrying a commit this long after the transaction began;
    /// `None` (any negative value, default -1) retries forever.
    pub max_commit_retry_timeout: Option<Duration>,
    /// `max-rollback-retry-timeout`: as above, for rollbacks.
    pub max_rollback_retry_timeout: Option<Duration>,
    /// `rollback-retry-timeout-unlock-enable` (false): release AT row locks when a rollback gives up.
    pub rollback_retry_timeout_unlock_enable: bool,
    /// `retry-dead-threshold` (130 000 ms): age after which a Committing/Rollbacking session with no
    /// driver is adopted by the recovery jobs.
    pub retry_dead_threshold: Duration,
    /// `xaer-nota-retry-timeout` (60 000 ms): how long an XA branch answering XAER_NOTA is retried.
    pub xaer_nota_retry_timeout: Duration,
    /// `distributed-lock-expire-time` (10 000 ms): TTL of the recovery-job lock shared by nodes.
    pub distributed_lock_expire_time: Duration,
    /// `enable-check-auth` (true): run the registration auth check. Like seata-server it accepts
    /// everyone unless credentials are configured in `auth.*`.
    pub enable_check_auth: bool,
    /// `auth.*` (extension): the access key and secret key TMs must sign their registration with.
    pub auth: AuthSettings,
    /// `limits.max-sessions-per-application` (extension, 1 000 000): open global transactions one
    /// application may have on this node; more begins fail with BeginFailed. 0: no limit.
    pub max_sessions_per_application: usize,
    /// `enable-parallel-request-handle` (true): handle merged sub-requests in parallel.
    pub enable_parallel_request_handle: bool,
    /// `enable-parallel-handle-branch` (false): phase two of different resources in parallel.
    pub enable_parallel_handle_branch: bool,
    /// `application-data-limit` (64 000 bytes): the applicationData size limit.
    pub application_data_limit: usize,
    /// `application-data-limit-check` (false): reject applicationData over the limit.
    pub application_data_limit_check: bool,
    /// `recovery.*`: periods of the recovery jobs.
    pub recovery: RecoverySettings,
    /// `undo.*`: AT undo-log housekeeping sent to resource managers.
    pub undo: UndoSettings,
    /// `session.*`: branch session removal.
    pub session: SessionSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_commit_retry_timeout: None,
            max_rollback_retry_timeout: None,
            rollback_retry_timeout_unlock_enable: false,
            retry_dead_threshold: Duration::from_millis(130_000),
            xaer_nota_retry_timeout: Duration::from_millis(60_000),
            distributed_lock_expire_time: Duration::from_millis(10_000),
            enable_check_auth: true,
            auth: AuthSettings::default(),
            max_sessions_per_application: 1_000_000,
            enable_parallel_request_handle: true,
            enable_parallel_handle_branch: false,
            application_data_limit: 64_000,
            application_data_limit_check: false,
            recovery: RecoverySettings::default(),
            undo: UndoSettings::default(),
            session: SessionSettings::default(),
        }
    }
}

/// `seata.server.auth.*` (extension keys): registration credentials. Java TMs configured with
/// `seata.access-key`/`seata.secret-key` sign their RegisterTM with Seata's V4 signature; with
/// `enable-check-auth` on and a secret key set here, registrations must carry a valid one.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `access-key`: the access key TMs must present (`ak=` in the registration).
    pub access_key: Option<String>,
    /// `secret-key`: the key signatures are checked with.
    pub secret_key: Option<Secret>,
    /// `max-clock-skew` (300 000 ms): how far a registration's timestamp may be from now.
    pub max_clock_skew: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { access_key: None, secret_key: None, max_clock_skew: Duration::from_secs(300) }
    }
}

/// `seata.server.recovery.*`: periods of the recovery jobs (all default to 1 000 ms).
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// `committing-retry-period`: the retry-committing job.
    pub committing_retry_period: Duration,
    /// `async-committing-retry-period` (also spelled `asyn-committing-retry-period`): the async-commit job.
    pub async_committing_retry_period: Duration,
    /// `rollbacking-retry-period`: the retry-rollbacking job.
    pub rollbacking_retry_period: Duration,
    /// `timeout-retry-period`: the timeout check.
    pub timeout_retry_period: Duration,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        let second = Duration::from_millis(1_000);
        Self {
            committing_retry_period: second,
            async_committing_retry_period: second,
            rollbacking_retry_period: second,
            timeout_retry_period: second,
        }
    }
}

/// `seata.server.undo.*`.
#[derive(Debug, Clone)]
pub struct UndoSettings {
    /// `log-save-days` (7, 1..=32767): how many days resource managers keep undo logs.
    pub log_save_days: u16,
    /// `log-delete-period` (86 400 000 ms): how often the undo-log delete request is broadcast.
    pub log_delete_period: Duration,
}

impl Default for UndoSettings {
    fn default() -> Self {
        Self { log_save_days: 7, log_delete_period: Duration::from_millis(86_400_000) }
    }
}

/// `seata.server.session.*`.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `branch-async-queue-size` (5 000): bound of the asynchronous branch-removal queue.
    pub branch_async_queue_size: usize,
    /// `enable-branch-async-remove` (false): remove branch sessions asynchronously.
    pub enable_branch_async_remove: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { branch_async_queue_size: 5_000, enable_branch_async_remove: false }
    }
}

/// A store mode this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `file`: the embedded store on local disk (single node).
    File,
    /// `db`: a shared MySQL-compatible or PostgreSQL database on Seata's schema.
    Db,
}

impl StoreMode {
    /// The name used in configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Db => "db",
        }
    }
}

impl fmt::Display for StoreMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `seata.store.*`.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `mode` (file): `-m` > `STORE_MODE` > `seata.store.mode` > file.
    pub mode: StoreMode,
    /// `session.mode`: `-ssm` > `SESSION_STORE_MODE` > `seata.store.session.mode` > `mode`.
    pub session_mode: StoreMode,
    /// `lock.mode`: `-lsm` > `LOCK_STORE_MODE` > `seata.store.lock.mode` > `mode`.
    pub lock_mode: StoreMode,
    /// `file.*`: the embedded store.
    pub file: FileStoreSettings,
    /// `db.*`: the database store.
    pub db: DbStoreSettings,
}

impl StoreSettings {
    /// True when sessions or locks are kept in the database.
    #[must_use]
    pub fn uses_db(&self) -> bool {
        self.session_mode == StoreMode::Db || self.lock_mode == StoreMode::Db
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            mode: StoreMode::File,
            session_mode: StoreMode::File,
            lock_mode: StoreMode::File,
            file: FileStoreSettings::default(),
            db: DbStoreSettings::default(),
        }
    }
}

/// When the file store forces writes to disk (`flush-disk-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskMode {
    /// `async` (Seata's default).
    Async,
    /// `sync`.
    Sync,
}

/// `seata.store.file.*`.
#[derive(Debug, Clone)]
pub struct FileStoreSettings {
    /// `dir` (`sessionStore`): directory of the store, relative to the working directory.
    pub dir: PathBuf,
    /// `max-branch-session-size` (16 384 bytes): largest encoded branch session.
    pub max_branch_session_size: usize,
    /// `max-global-session-size` (512 bytes): largest encoded global session.
    pub max_global_session_size: usize,
    /// `file-write-buffer-cache-size` (16 384 bytes): write buffer size.
    pub file_write_buffer_cache_size: usize,
    /// `session-reload-read-size` (100): sessions read per batch at start-up.
    pub session_reload_read_size: usize,
    /// `flush-disk-mode` (async).
    pub flush_disk_mode: FlushDiskMode,
}

impl Default for FileStoreSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("sessionStore"),
            max_branch_session_size: 16_384,
            max_global_session_size: 512,
            file_write_buffer_cache_size: 16_384,
            session_reload_read_size: 100,
            flush_disk_mode: FlushDiskMode::Async,
        }
    }
}

/// A database this server can use in db mode (`db-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbType {
    /// `mysql` (Seata's default).
    MySql,
    /// `mariadb`.
    MariaDb,
    /// `postgresql`.
    PostgreSql,
}

/// `seata.store.db.*`.
#[derive(Debug, Clone)]
pub struct DbStoreSettings {
    /// `datasource` (druid): the Java connection pool's name; accepted, not acted on.
    pub datasource: String,
    /// `db-type` (mysql): mysql, mariadb or postgresql.
    pub db_type: DbType,
    /// `driver-class-name` (`com.mysql.jdbc.Driver`): the Java driver; accepted, not acted on.
    pub driver_class_name: String,
    /// `url` (`jdbc:mysql://127.0.0.1:3306/seata?rewriteBatchedStatements=true`): a JDBC URL, as Seata takes it.
    pub url: String,
    /// `user`. Seata defaults it to `mysql`; we have no default.
    pub user: Option<String>,
    /// `password`. Seata defaults it to `mysql`; we have no default. Prints as `MASKED`.
    pub password: Option<Secret>,
    /// `min-conn` (10): connections kept open.
    pub min_conn: u32,
    /// `max-conn` (100): connection pool bound.
    pub max_conn: u32,
    /// `global-table` (global_table).
    pub global_table: String,
    /// `branch-table` (branch_table).
    pub branch_table: String,
    /// `lock-table` (lock_table).
    pub lock_table: String,
    /// `distributed-lock-table` (distributed_lock); `None` when set blank, which disables the
    /// cross-node job lock (every node runs every job).
    pub distributed_lock_table: Option<String>,
    /// `vgroup-table` (vgroup_table).
    pub vgroup_table: String,
    /// `query-limit` (1 000): rows per status query of the recovery jobs.
    pub query_limit: u32,
    /// `max-wait` (5 000 ms): how long to wait for a pooled connection.
    pub max_wait: Duration,
    /// `create-missing-tables` (extension, false): create Seata's tables when they do not exist
    /// (never alters an existing one); otherwise start-up stops and names what is missing.
    pub create_missing_tables: bool,
}

impl Default for DbStoreSettings {
    fn default() -> Self {
        Self {
            datasource: "druid".to_owned(),
            db_type: DbType::MySql,
            driver_class_name: "com.mysql.jdbc.Driver".to_owned(),
            url: "jdbc:mysql://127.0.0.1:3306/seata?rewriteBatchedStatements=true".to_owned(),
            user: None,
            password: None,
            min_conn: 10,
            max_conn: 100,
            global_table: "global_table".to_owned(),
            branch_table: "branch_table".to_owned(),
            lock_table: "lock_table".to_owned(),
            distributed_lock_table: Some("distributed_lock".to_owned()),
            vgroup_table: "vgroup_table".to_owned(),
            query_limit: 1_000,
            max_wait: Duration::from_millis(5_000),
            create_missing_tables: false,
        }
    }
}

/// `seata.transport.*`.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// `rpc-tc-request-timeout` (15 000 ms): timeout of a BranchCommit/BranchRollback sent to an RM.
    pub rpc_tc_request_timeout: Duration,
    /// `enable-tc-server-batch-send-response` (false): batch responses to clients that support it.
    pub enable_tc_server_batch_send_response: bool,
    /// `heartbeat` (true): answer and expect heartbeats.
    pub heartbeat: bool,
    /// `shutdown.wait` (13 s; a number means seconds): pause between leaving the registry and
    /// closing the RPC server at shutdown.
    pub shutdown_wait: Duration,
    /// `limits.*`: this server's own bounds (extension keys).
    pub limits: TransportLimits,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            rpc_tc_request_timeout: Duration::from_millis(15_000),
            enable_tc_server_batch_send_response: false,
            heartbeat: true,
            shutdown_wait: Duration::from_secs(13),
            limits: TransportLimits::default(),
        }
    }
}

/// `seata.transport.limits.*`: bounds of our own, not Seata keys (Seata has no such limits).
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// `max-connections` (10 000): connections accepted at once; more wait in the backlog.
    pub max_connections: usize,
    /// `max-frame-length` (8 MiB, 1 KiB..=1 GiB): largest RPC frame accepted or sent.
    pub max_frame_length: usize,
    /// `idle-timeout` (15 000 ms): a connection with no traffic (not even a heartbeat) for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self { max_connections: 10_000, max_frame_length: 8 * 1024 * 1024, idle_timeout: Duration::from_millis(15_000) }
    }
}

/// Default of `seata.security.ignore.urls` (Seata's shipped list).
pub(crate) const DEFAULT_IGNORE_URLS: &[&str] = &[
    "/",
    "/**/*.css",
    "/**/*.js",
    "/**/*.html",
    "/**/*.map",
    "/**/*.svg",
    "/**/*.png",
    "/**/*.jpeg",
    "/**/*.ico",
    "/api/v1/auth/login",
    "/version.json",
    "/health",
    "/error",
    "/vgroup/v1/**",
];

/// `seata.security.*`.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// `secretKey`: base64 HS256 key for console tokens. No default: `None` when absent.
    pub secret_key: Option<Secret>,
    /// `tokenValidityInMilliseconds` (1 800 000 ms): console token lifetime.
    pub token_validity: Duration,
    /// `csrf-ignore-urls` (`/metadata/v1/**`): paths exempt from CSRF checks.
    pub csrf_ignore_urls: Vec<String>,
    /// `ignore.urls`: paths served without authentication (Seata's list by default).
    pub ignore_urls: Vec<String>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            secret_key: None,
            token_validity: Duration::from_millis(1_800_000),
            csrf_ignore_urls: vec!["/metadata/v1/**".to_owned()],
            ignore_urls: DEFAULT_IGNORE_URLS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// `console.user.*`. Seata defaults both to `seata`; we have no defaults, so the console login
/// is refused until they are set.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// `console.user.username`.
    pub username: Option<String>,
    /// `console.user.password`. Prints as `MASKED`.
    pub password: Option<Secret>,
}

/// `seata.metrics.*`.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `enabled` (true, as in Seata's code; its sample yml sets false).
    pub enabled: bool,
    /// `registry-type` (compact, the only one).
    pub registry_type: MetricsRegistryType,
    /// `exporter-list` (prometheus, the only one).
    pub exporter_list: Vec<MetricsExporter>,
    /// `exporter-prometheus-port` (9898).
    pub exporter_prometheus_port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            registry_type: MetricsRegistryType::Compact,
            exporter_list: vec![MetricsExporter::Prometheus],
            exporter_prometheus_port: 9898,
        }
    }
}

/// `seata.metrics.registry-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRegistryType {
    /// `compact`: summaries and timers reset at every scrape, as Seata's.
    Compact,
}

/// An entry of `seata.metrics.exporter-list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExporter {
    /// `prometheus`: text format on `exporter-prometheus-port`.
    Prometheus,
}

/// Logging: `seata.log.level` (extension) > `logging.level.root` > info; `seata.log.format` (extension).
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// The default level.
    pub level: LogLevel,
    /// The output format.
    pub format: LogFormat,
}

/// A log level (Logback's names, case-insensitive; `all` means trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// `trace` (also `all`).
    Trace,
    /// `debug`.
    Debug,
    /// `info` (default).
    #[default]
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
    /// `off`.
    Off,
}

impl LogLevel {
    /// The name `tracing_subscriber::EnvFilter` understands.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Off => "off",
        }
    }
}

/// Log output format (`seata.log.format`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret (password, signing key). `Debug` and `Display` print `MASKED`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}
