//! The catalogue of keys: the ones we act on, their aliases, and the Seata keys we accept and ignore.
//!
//! Keys are compared after normalisation: every dot-separated segment lower-cased with `-` and `_`
//! removed, so `service-port`, `servicePort` and `service_port` are the same key (Spring's relaxed
//! binding, which Seata relies on).

/// Keys this server acts on, in canonical (kebab-case) spelling.
pub(crate) const KEYS: &[&str] = &[
    "server.port",
    "console.user.username",
    "console.user.password",
    "logging.level.root",
    "seata.log.level",
    "seata.log.format",
    "seata.config.type",
    "seata.registry.type",
    "seata.server.service-port",
    "seata.server.max-commit-retry-timeout",
    "seata.server.max-rollback-retry-timeout",
    "seata.server.rollback-retry-timeout-unlock-enable",
    "seata.server.retry-dead-threshold",
    "seata.server.xaer-nota-retry-timeout",
    "seata.server.distributed-lock-expire-time",
    "seata.server.enable-check-auth",
    "seata.server.auth.access-key",
    "seata.server.auth.secret-key",
    "seata.server.auth.max-clock-skew",
    "seata.server.limits.max-sessions-per-application",
    "seata.server.enable-parallel-request-handle",
    "seata.server.enable-parallel-handle-branch",
    "seata.server.application-data-limit",
    "seata.server.application-data-limit-check",
    "seata.server.recovery.committing-retry-period",
    "seata.server.recovery.async-committing-retry-period",
    "seata.server.recovery.rollbacking-retry-period",
    "seata.server.recovery.timeout-retry-period",
    "seata.server.undo.log-save-days",
    "seata.server.undo.log-delete-period",
    "seata.server.session.branch-async-queue-size",
    "seata.server.session.enable-branch-async-remove",
    "seata.store.mode",
    "seata.store.session.mode",
    "seata.store.lock.mode",
    "seata.store.file.dir",
    "seata.store.file.max-branch-session-size",
    "seata.store.file.max-global-session-size",
    "seata.store.file.file-write-buffer-cache-size",
    "seata.store.file.session-reload-read-size",
    "seata.store.file.flush-disk-mode",
    "seata.store.db.datasource",
    "seata.store.db.db-type",
    "seata.store.db.driver-class-name",
    "seata.store.db.url",
    "seata.store.db.user",
    "seata.store.db.password",
    "seata.store.db.min-conn",
    "seata.store.db.max-conn",
    "seata.store.db.global-table",
    "seata.store.db.branch-table",
    "seata.store.db.lock-table",
    "seata.store.db.distributed-lock-table",
    "seata.store.db.vgroup-table",
    "seata.store.db.query-limit",
    "seata.store.db.max-wait",
    "seata.store.db.create-missing-tables",
    "seata.transport.rpc-tc-request-timeout",
    "seata.transport.enable-tc-server-batch-send-response",
    "seata.transport.heartbeat",
    "seata.transport.shutdown.wait",
    "seata.transport.limits.max-connections",
    "seata.transport.limits.max-frame-length",
    "seata.transport.limits.idle-timeout",
    "seata.security.secret-key",
    "seata.security.token-validity-in-milliseconds",
    "seata.security.csrf-ignore-urls",
    "seata.security.ignore.urls",
    "seata.metrics.enabled",
    "seata.metrics.registry-type",
    "seata.metrics.exporter-list",
    "seata.metrics.exporter-prometheus-port",
];

/// Other spellings of keys we act on: (alias, canonical key).
const ALIASES: &[(&str, &str)] = &[
    // config.txt (and older docs) misspell it; upstream ignores this spelling, we accept both.
    ("seata.server.recovery.asyn-committing-retry-period", "seata.server.recovery.async-committing-retry-period"),
];

/// Seata (and Spring Boot) keys that are accepted and not acted on, as whole subtrees.
const IGNORED: &[&str] = &[
    // Spring Boot itself.
    "spring",
    "management",
    "server.servlet",
    "server.tomcat",
    "server.undertow",
    "server.jetty",
    "server.netty",
    "server.ssl",
    "server.http2",
    "server.compression",
    "server.error",
    "server.shutdown",
    "server.address",
    "server.forward-headers-strategy",
    "server.max-http-header-size",
    "server.max-http-request-header-size",
    "logging.config",
    "logging.file",
    "logging.extend",
    "logging.level",
    "logging.pattern",
    "logging.charset",
    "logging.logback",
    "logging.group",
    "logging.register-shutdown-hook",
    "logging.threshold",
    // Config centres and registries (only `type: file` is acted on, see `KEYS`).
    "seata.config",
    "seata.registry",
    // Server features we do not implement.
    "seata.server.raft",
    "seata.server.ratelimit",
    "seata.server.http",
    "seata.server.max-end-status-retry-timeout",
    "seata.server.enable-check-auth-v2",
    "seata.store.public-key",
    "seata.store.redis",
    "seata.store.raft",
    "seata.store.db.druid",
    "seata.store.db.dbcp",
    "seata.store.db.hikari",
    // Netty and client-side transport knobs.
    "seata.transport.type",
    "seata.transport.server",
    "seata.transport.thread-factory",
    "seata.transport.serialization",
    "seata.transport.compressor",
    "seata.transport.enable-client-batch-send-request",
    "seata.transport.enable-tm-client-batch-send-request",
    "seata.transport.enable-rm-client-batch-send-request",
    "seata.transport.rpc-rm-request-timeout",
    "seata.transport.rpc-tm-request-timeout",
    "seata.transport.min-server-pool-size",
    "seata.transport.max-server-pool-size",
    "seata.transport.max-task-queue-size",
    "seata.transport.keep-alive-time",
    "seata.security.refresh-token-validity-in-milliseconds",
    "seata.log.exception-rate",
    // Client-side keys, present when one application.yml is shared with applications.
    "seata.client",
    "seata.service",
    "seata.saga",
    "seata.tcc",
    "seata.enabled",
    "seata.application-id",
    "seata.tx-service-group",
    "seata.enable-auto-data-source-proxy",
    "seata.data-source-proxy-mode",
    "seata.use-jdk-proxy",
    "seata.excludes-for-auto-proxying",
    "seata.excludes-for-scanning",
    "seata.scan-packages",
    "seata.access-key",
    "seata.secret-key",
];

/// Top-level blocks of `file.conf`/`registry.conf` that Seata exposes as `seata.<key>`; anything
/// else in those files (`service { }`, `client { }` of 1.x client files) is ignored by Seata too.
pub(crate) const LEGACY_EXPOSED: &[&str] = &["config", "registry", "server", "store", "metrics", "transport"];

/// How a (normalised) key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyClass {
    /// One of `KEYS` (the canonical spelling is returned).
    Acted(&'static str),
    /// A Seata key we accept and ignore.
    Ignored,
    /// A section that only contains other keys (seen when it is written empty).
    Section,
    /// Nobody's key.
    Unknown,
}

/// Normalises a dotted key: each segment lower-cased, `-` and `_` removed.
pub(crate) fn normalize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for ch in key.chars() {
        match ch {
            '-' | '_' => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

fn is_segment_prefix(prefix: &str, key: &str) -> bool {
    key == prefix || (key.starts_with(prefix) && key.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Classifies a normalised key.
pub(crate) fn classify(norm: &str) -> KeyClass {
    if let Some(key) = KEYS.iter().find(|k| normalize(k) == norm) {
        return KeyClass::Acted(key);
    }
    if let Some((_, key)) = ALIASES.iter().find(|(alias, _)| normalize(alias) == norm) {
        return KeyClass::Acted(key);
    }
    if IGNORED.iter().any(|p| is_segment_prefix(&normalize(p), norm)) {
        return KeyClass::Ignored;
    }
    if KEYS.iter().chain(IGNORED.iter()).any(|k| is_segment_prefix(norm, &normalize(k))) {
        return KeyClass::Section;
    }
    KeyClass::Unknown
}

/// The environment variable names Spring's relaxed binding maps to a key:
/// `seata.store.db.url` -> `SEATA_STORE_DB_URL`; `seata.server.service-port` ->
/// `SEATA_SERVER_SERVICEPORT` and the legacy form `SEATA_SERVER_SERVICE_PORT`.
pub(crate) fn env_names(key: &str) -> [String; 2] {
    let upper = key.to_uppercase();
    [upper.replace('.', "_").replace('-', ""), upper.replace(['.', '-'], "_")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_spellings_are_one_key() {
        for spelling in [
            "seata.server.service-port",
            "seata.server.servicePort",
            "seata.server.service_port",
            "Seata.Server.SERVICE-PORT",
        ] {
            assert_eq!(classify(&normalize(spelling)), KeyClass::Acted("seata.server.service-port"), "{spelling}");
        }
    }

    #[test]
    fn misspelled_async_period_is_an_alias() {
        assert_eq!(
            classify(&normalize("seata.server.recovery.asynCommittingRetryPeriod")),
            KeyClass::Acted("seata.server.recovery.async-committing-retry-period")
        );
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&normalize("seata.registry.nacos.server-addr")), KeyClass::Ignored);
        assert_eq!(classify(&normalize("logging.level.org.apache")), KeyClass::Ignored);
        assert_eq!(classify(&normalize("logging.level.root")), KeyClass::Acted("logging.level.root"));
        assert_eq!(classify(&normalize("seata.store.db")), KeyClass::Section);
        assert_eq!(classify(&normalize("seata")), KeyClass::Section);
        assert_eq!(classify(&normalize("seata.store.db.foo")), KeyClass::Unknown);
        assert_eq!(classify(&normalize("seata.storex")), KeyClass::Unknown);
        assert_eq!(classify(&normalize("nonsense")), KeyClass::Unknown);
    }

    #[test]
    fn every_key_is_unique_after_normalisation() {
        let mut seen = std::collections::BTreeSet::new();
        for key in KEYS {
            assert!(seen.insert(normalize(key)), "{key} listed twice");
            assert!(!IGNORED.iter().any(|p| normalize(p) == normalize(key)), "{key} also ignored");
        }
    }

    #[test]
    fn env_names_follow_spring() {
        assert_eq!(
            env_names("seata.server.service-port"),
            ["SEATA_SERVER_SERVICEPORT".to_owned(), "SEATA_SERVER_SERVICE_PORT".to_owned()]
        );
        assert_eq!(env_names("server.port")[0], "SERVER_PORT");
    }
}
