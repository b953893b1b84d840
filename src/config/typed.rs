//! From merged raw entries to validated [`Settings`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::cli::Cli;
use super::error::{ConfigError, Origin};
use super::host::{derive_server_node, validate_host};
use super::keys::{classify, normalize, KeyClass};
use super::settings::{
    AuthSettings, ConsoleSettings, DbStoreSettings, DbType, FileStoreSettings, FlushDiskMode, IgnoredKey, LogFormat,
    LogLevel, LogSettings, MetricsExporter, MetricsRegistryType, MetricsSettings, RecoverySettings, SecuritySettings,
    ServerSettings, SessionSettings, Settings, StoreMode, StoreSettings, TransportLimits, TransportSettings,
    UndoSettings,
};
use super::source::{env_lookup, resolve_placeholders, Entry, RawValue};

/// All sources merged: the winning entry for every key we act on.
pub(crate) struct Merged {
    acted: BTreeMap<&'static str, Entry>,
    /// Every scalar seen (normalised key -> text), for `${key}` placeholders.
    scalars: HashMap<String, String>,
    ignored: Vec<IgnoredKey>,
}

impl Merged {
    /// Merges layers, lowest precedence first. A key with no value does not override.
    pub(crate) fn new(layers: Vec<Vec<Entry>>, ignored: Vec<IgnoredKey>) -> Result<Self, ConfigError> {
        let mut merged = Self { acted: BTreeMap::new(), scalars: HashMap::new(), ignored };
        for entry in layers.into_iter().flatten() {
            let norm = normalize(&entry.key);
            if let RawValue::Scalar(s) = &entry.value {
                merged.scalars.insert(norm.clone(), s.clone());
            }
            match classify(&norm) {
                KeyClass::Acted(key) => {
                    if entry.value != RawValue::Null {
                        merged.acted.insert(key, entry);
                    }
                }
                KeyClass::Ignored => merged.ignored.push(IgnoredKey { key: entry.written, origin: entry.origin }),
                KeyClass::Section if entry.value == RawValue::Null => {}
                KeyClass::Section => {
                    return Err(ConfigError::InvalidValue {
                        origin: entry.origin,
                        key: entry.written,
                        message: "is a section: expected nested keys, not a value".to_owned(),
                    })
                }
                KeyClass::Unknown => return Err(ConfigError::UnknownKey { origin: entry.origin, key: entry.written }),
            }
        }
        Ok(merged)
    }
}

/// Typed access to the merged entries; remembers which keys were read (checked by a test).
struct Reader<'a> {
    merged: &'a Merged,
    env: &'a HashMap<String, String>,
    read: BTreeSet<&'static str>,
}

fn invalid(entry: &Entry, message: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue { origin: entry.origin.clone(), key: entry.written.clone(), message: message.into() }
}

impl<'a> Reader<'a> {
    /// The entry for `key` and its text with placeholders resolved; `None` when not set.
    fn text(&mut self, key: &'static str) -> Result<Option<(String, &'a Entry)>, ConfigError> {
        self.read.insert(key);
        let merged = self.merged;
        let Some(entry) = merged.acted.get(key) else {
            return Ok(None);
        };
        let raw = match &entry.value {
            RawValue::Null => return Ok(None),
            RawValue::Scalar(s) => s.clone(),
            RawValue::List(items) => items.join(","),
            RawValue::Complex => return Err(invalid(entry, "expected a value, found nested data")),
        };
        let env = self.env;
        let lookup = |name: &str| env_lookup(env, name).or_else(|| merged.scalars.get(&normalize(name)).cloned());
        let text = resolve_placeholders(&raw, &lookup).map_err(|m| invalid(entry, m))?;
        Ok(Some((text, entry)))
    }

    /// Parses the value of `key`; an empty value counts as not set.
    fn parse<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.text(key)? {
            Some((text, entry)) if !text.trim().is_empty() => {
                parse(text.trim()).map(Some).map_err(|m| invalid(entry, m))
            }
            _ => Ok(None),
        }
    }

    fn get<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        Ok(self.parse(key, parse)?.unwrap_or(default))
    }

    /// A string; `Some("")` when explicitly empty.
    fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self.text(key)?.map(|(text, _)| text))
    }

    /// A non-empty string (empty -> not set).
    fn non_empty(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self.string(key)?.filter(|s| !s.trim().is_empty()))
    }

    /// A name (table name...): must not be blank if given.
    fn name(&mut self, key: &'static str, default: &str) -> Result<String, ConfigError> {
        match self.text(key)? {
            None => Ok(default.to_owned()),
            Some((text, entry)) if text.trim().is_empty() => Err(invalid(entry, "must not be empty")),
            Some((text, _)) => Ok(text.trim().to_owned()),
        }
    }

    /// A comma-separated (or YAML) list; blank items dropped.
    fn list(&mut self, key: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
        Ok(self
            .text(key)?
            .map(|(text, _)| text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()))
    }
}

fn bad(value: &str, expected: &str) -> String {
    format!("invalid value \"{value}\" (expected {expected})")
}

fn unknown(value: &str, expected: &str) -> String {
    format!("unknown value \"{value}\" (expected {expected})")
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(bad(s, "true or false")),
    }
}

/// An integer in `min..=max`.
fn int_in<T: TryFrom<i64>>(min: i64, max: i64) -> impl Fn(&str) -> Result<T, String> {
    move |s: &str| {
        let expected = format!("an integer from {min} to {max}");
        s.parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| bad(s, &expected))
    }
}

fn port(s: &str) -> Result<u16, String> {
    int_in::<u16>(1, 65_535)(s).map_err(|_| bad(s, "a port number from 1 to 65535"))
}

/// Milliseconds as a signed number, with an optional unit (`ms`, `s`, `m`, `h`, `d`) that
/// overrides `unit_ms` (the meaning of a bare number).
fn signed_millis(s: &str, unit_ms: i64) -> Result<i64, String> {
    let expected = if unit_ms == 1_000 {
        "seconds, or a number with a unit ms/s/m/h/d"
    } else {
        "milliseconds, or a number with a unit ms/s/m/h/d"
    };
    let split = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, unit) = s.split_at(split);
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" => unit_ms,
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad(s, expected)),
    };
    number.parse::<i64>().ok().and_then(|n| n.checked_mul(factor)).ok_or_else(|| bad(s, expected))
}

/// A duration of at least `min_ms`; a bare number is `unit_ms` each.
fn duration(unit_ms: i64, min_ms: i64) -> impl Fn(&str) -> Result<Duration, String> {
    move |s: &str| {
        let ms = signed_millis(s, unit_ms)?;
        if ms < min_ms {
            return Err(format!("invalid value \"{s}\" (must be at least {min_ms} ms)"));
        }
        u64::try_from(ms).map(Duration::from_millis).map_err(|_| bad(s, "a non-negative duration"))
    }
}

fn millis(s: &str) -> Result<Duration, String> {
    duration(1, 0)(s)
}

fn period(s: &str) -> Result<Duration, String> {
    duration(1, 1)(s)
}

/// Seata's retry timeouts: negative means "retry forever" (`None`).
fn retry_timeout(s: &str) -> Result<Option<Duration>, String> {
    let ms = signed_millis(s, 1)?;
    Ok(u64::try_from(ms).ok().map(Duration::from_millis))
}

fn store_mode(s: &str) -> Result<StoreMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "file" => Ok(StoreMode::File),
        "db" => Ok(StoreMode::Db),
        "redis" | "raft" => Err(format!("store mode \"{s}\" is not supported by this server (expected file, db)")),
        _ => Err(unknown(s, "file, db")),
    }
}

fn db_type(s: &str) -> Result<DbType, String> {
    match s.to_ascii_lowercase().as_str() {
        "mysql" => Ok(DbType::MySql),
        "mariadb" => Ok(DbType::MariaDb),
        "postgresql" | "postgres" => Ok(DbType::PostgreSql),
        "oracle" | "h2" | "oceanbase" | "sqlserver" | "dm" | "kingbase" | "oscar" | "polardb-x" | "polardbx" => {
            Err(format!("database type \"{s}\" is not supported by this server (expected mysql, mariadb, postgresql)"))
        }
        _ => Err(unknown(s, "mysql, mariadb, postgresql")),
    }
}

fn flush_disk_mode(s: &str) -> Result<FlushDiskMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "async" => Ok(FlushDiskMode::Async),
        "sync" => Ok(FlushDiskMode::Sync),
        _ => Err(unknown(s, "async, sync")),
    }
}

fn log_level(s: &str) -> Result<LogLevel, String> {
    match s.to_ascii_lowercase().as_str() {
        "trace" | "all" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        "off" => Ok(LogLevel::Off),
        _ => Err(unknown(s, "trace, debug, info, warn, error, off")),
    }
}

fn log_format(s: &str) -> Result<LogFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(unknown(s, "text, json")),
    }
}

fn registry_type(s: &str) -> Result<MetricsRegistryType, String> {
    match s.to_ascii_lowercase().as_str() {
        "compact" => Ok(MetricsRegistryType::Compact),
        _ => Err(unknown(s, "compact")),
    }
}

fn exporter(s: &str) -> Result<MetricsExporter, String> {
    match s.to_ascii_lowercase().as_str() {
        "prometheus" => Ok(MetricsExporter::Prometheus),
        _ => Err(unknown(s, "prometheus")),
    }
}

/// Builds and validates the settings. `detect_host` is called only when neither `--host` nor
/// `SEATA_IP` is given.
pub(crate) fn build(
    merged: Merged,
    cli: &Cli,
    env: &HashMap<String, String>,
    detect_host: impl FnOnce() -> Option<Ipv4Addr>,
    files: Vec<PathBuf>,
) -> Result<Settings, ConfigError> {
    let (settings, _read) = build_reading(merged, cli, env, detect_host, files)?;
    Ok(settings)
}

fn build_reading(
    merged: Merged,
    cli: &Cli,
    env: &HashMap<String, String>,
    detect_host: impl FnOnce() -> Option<Ipv4Addr>,
    files: Vec<PathBuf>,
) -> Result<(Settings, BTreeSet<&'static str>), ConfigError> {
    let mut r = Reader { merged: &merged, env, read: BTreeSet::new() };
    let mut ignored = merged.ignored.clone();

    // Config centre and registry: only `file` is acted on; anything else is listed as ignored.
    for key in ["seata.config.type", "seata.registry.type"] {
        if let Some((text, entry)) = r.text(key)? {
            let all_file =
                text.split(',').map(str::trim).filter(|t| !t.is_empty()).all(|t| t.eq_ignore_ascii_case("file"));
            if !all_file {
                ignored.push(IgnoredKey {
                    key: format!("{}={}", entry.written, text.trim()),
                    origin: entry.origin.clone(),
                });
            }
        }
    }

    let server_port = r.get("server.port", 7091, port)?;
    let service_port = match r.parse("seata.server.service-port", port)? {
        Some(p) => p,
        None => server_port.checked_add(1000).ok_or_else(|| ConfigError::Inconsistent {
            key: "seata.server.service-port".to_owned(),
            message: format!("not set, and server.port + 1000 ({server_port} + 1000) is not a valid port; set it"),
        })?,
    };

    let host = match (&cli.host, env.get("SEATA_IP").filter(|v| !v.trim().is_empty())) {
        (Some(flag), _) => validate_host(flag).map_err(|message| ConfigError::InvalidValue {
            origin: Origin::CommandLine,
            key: "--host".to_owned(),
            message,
        })?,
        (None, Some(var)) => validate_host(var).map_err(|message| ConfigError::InvalidValue {
            origin: Origin::Env,
            key: "SEATA_IP".to_owned(),
            message,
        })?,
        (None, None) => detect_host().unwrap_or(Ipv4Addr::LOCALHOST).to_string(),
    };

    let node_range = int_in::<u16>(0, 1023);
    let server_node = match (cli.server_node, env.get("SERVER_NODE").filter(|v| !v.trim().is_empty())) {
        (Some(n), _) => node_range(&n.to_string()).map_err(|message| ConfigError::InvalidValue {
            origin: Origin::CommandLine,
            key: "--serverNode".to_owned(),
            message,
        })?,
        (None, Some(var)) => node_range(var.trim()).map_err(|message| ConfigError::InvalidValue {
            origin: Origin::Env,
            key: "SERVER_NODE".to_owned(),
            message,
        })?,
        (None, None) => derive_server_node(&host, service_port),
    };

    let server = read_server(&mut r)?;
    let store = read_store(&mut r, &mut ignored)?;
    let transport = read_transport(&mut r)?;
    let security = read_security(&mut r)?;
    let console = ConsoleSettings {
        username: r.non_empty("console.user.username")?,
        password: r.non_empty("console.user.password")?.map(super::Secret::new),
    };
    let metrics = read_metrics(&mut r)?;

    let root_level = r.parse("logging.level.root", log_level)?;
    let log = LogSettings {
        level: r.parse("seata.log.level", log_level)?.or(root_level).unwrap_or_default(),
        format: r.get("seata.log.format", LogFormat::Text, log_format)?,
    };

    let settings = Settings {
        server_port,
        service_port,
        host,
        server_node,
        server,
        store,
        transport,
        security,
        console,
        metrics,
        log,
        ignored_keys: ignored,
        files,
    };
    Ok((settings, r.read))
}

fn read_server(r: &mut Reader<'_>) -> Result<ServerSettings, ConfigError> {
    let d = ServerSettings::default();
    let recovery = RecoverySettings {
        committing_retry_period: r.get(
            "seata.server.recovery.committing-retry-period",
            d.recovery.committing_retry_period,
            period,
        )?,
        async_committing_retry_period: r.get(
            "seata.server.recovery.async-committing-retry-period",
            d.recovery.async_committing_retry_period,
            period,
        )?,
        rollbacking_retry_period: r.get(
            "seata.server.recovery.rollbacking-retry-period",
            d.recovery.rollbacking_retry_period,
            period,
        )?,
        timeout_retry_period: r.get(
            "seata.server.recovery.timeout-retry-period",
            d.recovery.timeout_retry_period,
            period,
        )?,
    };
    let undo = UndoSettings {
        log_save_days: r.get(
            "seata.server.undo.log-save-days",
            d.undo.log_save_days,
            int_in(1, i64::from(i16::MAX)),
        )?,
        log_delete_period: r.get("seata.server.undo.log-delete-period", d.undo.log_delete_period, period)?,
    };
    let session = SessionSettings {
        branch_async_queue_size: r.get(
            "seata.server.session.branch-async-queue-size",
            d.session.branch_async_queue_size,
            int_in(1, 10_000_000),
        )?,
        enable_branch_async_remove: r.get(
            "seata.server.session.enable-branch-async-remove",
            d.session.enable_branch_async_remove,
            parse_bool,
        )?,
    };
    Ok(ServerSettings {
        max_commit_retry_timeout: r.get(
            "seata.server.max-commit-retry-timeout",
            d.max_commit_retry_timeout,
            retry_timeout,
        )?,
        max_rollback_retry_timeout: r.get(
            "seata.server.max-rollback-retry-timeout",
            d.max_rollback_retry_timeout,
            retry_timeout,
        )?,
        rollback_retry_timeout_unlock_enable: r.get(
            "seata.server.rollback-retry-timeout-unlock-enable",
            d.rollback_retry_timeout_unlock_enable,
            parse_bool,
        )?,
        retry_dead_threshold: r.get("seata.server.retry-dead-threshold", d.retry_dead_threshold, millis)?,
        xaer_nota_retry_timeout: r.get("seata.server.xaer-nota-retry-timeout", d.xaer_nota_retry_timeout, millis)?,
        distributed_lock_expire_time: r.get(
            "seata.server.distributed-lock-expire-time",
            d.distributed_lock_expire_time,
            period,
        )?,
        enable_check_auth: r.get("seata.server.enable-check-auth", d.enable_check_auth, parse_bool)?,
        max_sessions_per_application: r.get(
            "seata.server.limits.max-sessions-per-application",
            d.max_sessions_per_application,
            int_in(0, i64::from(i32::MAX)),
        )?,
        auth: AuthSettings {
            access_key: r.non_empty("seata.server.auth.access-key")?.map(|s| s.trim().to_owned()),
            secret_key: r.non_empty("seata.server.auth.secret-key")?.map(super::Secret::new),
            max_clock_skew: r.get("seata.server.auth.max-clock-skew", d.auth.max_clock_skew, millis)?,
        },
        enable_parallel_request_handle: r.get(
            "seata.server.enable-parallel-request-handle",
            d.enable_parallel_request_handle,
            parse_bool,
        )?,
        enable_parallel_handle_branch: r.get(
            "seata.server.enable-parallel-handle-branch",
            d.enable_parallel_handle_branch,
            parse_bool,
        )?,
        application_data_limit: r.get(
            "seata.server.application-data-limit",
            d.application_data_limit,
            int_in(0, i64::from(i32::MAX)),
        )?,
        application_data_limit_check: r.get(
            "seata.server.application-data-limit-check",
            d.application_data_limit_check,
            parse_bool,
        )?,
        recovery,
        undo,
        session,
    })
}

fn read_store(r: &mut Reader<'_>, ignored: &mut Vec<IgnoredKey>) -> Result<StoreSettings, ConfigError> {
    let mode = r.get("seata.store.mode", StoreMode::File, store_mode)?;
    let session_mode = r.get("seata.store.session.mode", mode, store_mode)?;
    let lock_mode = r.get("seata.store.lock.mode", mode, store_mode)?;
    let uses_db = session_mode == StoreMode::Db || lock_mode == StoreMode::Db;

    let fd = FileStoreSettings::default();
    let size = int_in::<usize>(1, i64::from(i32::MAX));
    let file = FileStoreSettings {
        dir: r.non_empty("seata.store.file.dir")?.map_or(fd.dir, |d| PathBuf::from(d.trim())),
        max_branch_session_size: r.get(
            "seata.store.file.max-branch-session-size",
            fd.max_branch_session_size,
            &size,
        )?,
        max_global_session_size: r.get(
            "seata.store.file.max-global-session-size",
            fd.max_global_session_size,
            &size,
        )?,
        file_write_buffer_cache_size: r.get(
            "seata.store.file.file-write-buffer-cache-size",
            fd.file_write_buffer_cache_size,
            &size,
        )?,
        session_reload_read_size: r.get(
            "seata.store.file.session-reload-read-size",
            fd.session_reload_read_size,
            &size,
        )?,
        flush_disk_mode: r.get("seata.store.file.flush-disk-mode", fd.flush_disk_mode, flush_disk_mode)?,
    };

    let dd = DbStoreSettings::default();
    // Seata templates often carry a db block while running in file mode: an unsupported db-type
    // is only an error when the database is used.
    let db_type = if uses_db {
        r.get("seata.store.db.db-type", dd.db_type, db_type)?
    } else {
        match r.text("seata.store.db.db-type")? {
            Some((text, entry)) if !text.trim().is_empty() => db_type(text.trim()).unwrap_or_else(|_| {
                ignored.push(IgnoredKey { key: entry.written.clone(), origin: entry.origin.clone() });
                dd.db_type
            }),
            _ => dd.db_type,
        }
    };
    let conn = int_in::<u32>(1, 100_000);
    let distributed_lock_table = match r.string("seata.store.db.distributed-lock-table")? {
        None => dd.distributed_lock_table,
        Some(t) if t.trim().is_empty() => None,
        Some(t) => Some(t.trim().to_owned()),
    };
    let db = DbStoreSettings {
        datasource: r.non_empty("seata.store.db.datasource")?.unwrap_or(dd.datasource),
        db_type,
        driver_class_name: r.non_empty("seata.store.db.driver-class-name")?.unwrap_or(dd.driver_class_name),
        url: r.string("seata.store.db.url")?.map_or(dd.url, |u| u.trim().to_owned()),
        user: r.non_empty("seata.store.db.user")?,
        password: r.non_empty("seata.store.db.password")?.map(super::Secret::new),
        min_conn: r.get("seata.store.db.min-conn", dd.min_conn, &conn)?,
        max_conn: r.get("seata.store.db.max-conn", dd.max_conn, &conn)?,
        global_table: r.name("seata.store.db.global-table", &dd.global_table)?,
        branch_table: r.name("seata.store.db.branch-table", &dd.branch_table)?,
        lock_table: r.name("seata.store.db.lock-table", &dd.lock_table)?,
        distributed_lock_table,
        vgroup_table: r.name("seata.store.db.vgroup-table", &dd.vgroup_table)?,
        query_limit: r.get("seata.store.db.query-limit", dd.query_limit, int_in(1, 1_000_000))?,
        max_wait: r.get("seata.store.db.max-wait", dd.max_wait, millis)?,
        create_missing_tables: r.get("seata.store.db.create-missing-tables", dd.create_missing_tables, parse_bool)?,
    };
    if uses_db {
        if db.url.is_empty() {
            return Err(ConfigError::Inconsistent {
                key: "seata.store.db.url".to_owned(),
                message: "required when the store mode is db".to_owned(),
            });
        }
        if db.min_conn > db.max_conn {
            return Err(ConfigError::Inconsistent {
                key: "seata.store.db.min-conn".to_owned(),
                message: format!("{} is above max-conn {}", db.min_conn, db.max_conn),
            });
        }
    }
    Ok(StoreSettings { mode, session_mode, lock_mode, file, db })
}

fn read_transport(r: &mut Reader<'_>) -> Result<TransportSettings, ConfigError> {
    let d = TransportSettings::default();
    let limits = TransportLimits {
        max_connections: r.get(
            "seata.transport.limits.max-connections",
            d.limits.max_connections,
            int_in(1, 10_000_000),
        )?,
        max_frame_length: r.get(
            "seata.transport.limits.max-frame-length",
            d.limits.max_frame_length,
            int_in(1024, 1 << 30),
        )?,
        idle_timeout: r.get("seata.transport.limits.idle-timeout", d.limits.idle_timeout, period)?,
    };
    Ok(TransportSettings {
        rpc_tc_request_timeout: r.get("seata.transport.rpc-tc-request-timeout", d.rpc_tc_request_timeout, period)?,
        enable_tc_server_batch_send_response: r.get(
            "seata.transport.enable-tc-server-batch-send-response",
            d.enable_tc_server_batch_send_response,
            parse_bool,
        )?,
        heartbeat: r.get("seata.transport.heartbeat", d.heartbeat, parse_bool)?,
        shutdown_wait: r.get("seata.transport.shutdown.wait", d.shutdown_wait, duration(1_000, 0))?,
        limits,
    })
}

fn read_security(r: &mut Reader<'_>) -> Result<SecuritySettings, ConfigError> {
    let d = SecuritySettings::default();
    Ok(SecuritySettings {
        secret_key: r.non_empty("seata.security.secret-key")?.map(super::Secret::new),
        token_validity: r.get("seata.security.token-validity-in-milliseconds", d.token_validity, period)?,
        csrf_ignore_urls: r.list("seata.security.csrf-ignore-urls")?.unwrap_or(d.csrf_ignore_urls),
        ignore_urls: r.list("seata.security.ignore.urls")?.unwrap_or(d.ignore_urls),
    })
}

fn read_metrics(r: &mut Reader<'_>) -> Result<MetricsSettings, ConfigError> {
    let d = MetricsSettings::default();
    let exporter_list = match r.text("seata.metrics.exporter-list")? {
        None => d.exporter_list,
        Some((text, entry)) => {
            let mut list = Vec::new();
            for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let e = exporter(item).map_err(|m| invalid(entry, m))?;
                if !list.contains(&e) {
                    list.push(e);
                }
            }
            list
        }
    };
    Ok(MetricsSettings {
        enabled: r.get("seata.metrics.enabled", d.enabled, parse_bool)?,
        registry_type: r.get("seata.metrics.registry-type", d.registry_type, registry_type)?,
        exporter_list,
        exporter_prometheus_port: r.get("seata.metrics.exporter-prometheus-port", d.exporter_prometheus_port, port)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::KEYS;

    #[test]
    fn every_catalogued_key_is_read_and_nothing_else() {
        let merged = Merged::new(Vec::new(), Vec::new()).unwrap();
        let (_, read) = build_reading(merged, &Cli::default(), &HashMap::new(), || None, Vec::new()).unwrap();
        let catalogue: BTreeSet<&str> = KEYS.iter().copied().collect();
        assert_eq!(read, catalogue);
    }

    #[test]
    fn durations() {
        assert_eq!(millis("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(millis("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(millis("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(millis("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(duration(1_000, 0)("3").unwrap(), Duration::from_secs(3));
        assert_eq!(duration(1_000, 0)("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(retry_timeout("-1").unwrap(), None);
        assert_eq!(retry_timeout("0").unwrap(), Some(Duration::ZERO));
        assert_eq!(retry_timeout("60000").unwrap(), Some(Duration::from_secs(60)));
        for bad in ["", "x", "1.5", "-1", "1w", "99999999999999999999", "9223372036854775807d"] {
            assert!(millis(bad).is_err(), "{bad:?}");
        }
        assert!(period("0").is_err());
    }

    #[test]
    fn integers_and_bools() {
        assert_eq!(port("8091").unwrap(), 8091);
        assert!(port("0").is_err());
        assert!(port("65536").is_err());
        assert!(port("-1").is_err());
        assert_eq!(int_in::<u16>(0, 1023)("1023").unwrap(), 1023);
        assert!(int_in::<u16>(0, 1023)("1024").is_err());
        assert!(parse_bool("TRUE").unwrap());
        assert!(!parse_bool("off").unwrap());
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn enums() {
        assert_eq!(store_mode("DB").unwrap(), StoreMode::Db);
        assert_eq!(store_mode("foo").unwrap_err(), "unknown value \"foo\" (expected file, db)");
        assert!(store_mode("redis").unwrap_err().contains("not supported"));
        assert_eq!(db_type("PostgreSQL").unwrap(), DbType::PostgreSql);
        assert!(db_type("oracle").unwrap_err().contains("not supported"));
        assert_eq!(log_level("WARN").unwrap(), LogLevel::Warn);
        assert_eq!(log_level("all").unwrap(), LogLevel::Trace);
    }
}
