//! Configuration: Seata's own files, environment variables and flags, read into typed [`Settings`].
//!
//! Users keep the `application.yml` (or legacy `registry.conf` + `file.conf`) they run
//! seata-server with, so keys are Seata's and follow Spring's relaxed binding: each dotted
//! segment is compared lower-cased with `-` and `_` removed (`service-port` = `servicePort` =
//! `service_port`).
//!
//! Sources, lowest precedence first:
//!
//! 1. built-in defaults (Seata's; [`Settings::default`]);
//! 2. legacy `registry.conf` and the `file.conf` it names, when `--config` points at a `.conf`
//!    file or a `registry.conf` sits next to the yml (name from `SEATA_CONFIG_NAME`,
//!    `registry-<env>` with `-e`/`SEATA_ENV`); their `store`, `server`, `transport`, `metrics`,
//!    `config`, `registry` blocks are read as `seata.<key>`;
//! 3. `application.yml`: `--config FILE`, else `conf/application.yml`, else the embedded copy;
//! 4. environment variables in Spring's form for any key we act on (`SEATA_STORE_MODE`,
//!    `SEATA_STORE_DB_URL`, `SERVER_PORT`, ...);
//! 5. seata-server's own variables: `SEATA_PORT`, `STORE_MODE`, `SESSION_STORE_MODE`,
//!    `LOCK_STORE_MODE` (and `SEATA_IP`, `SERVER_NODE`, which have no key);
//! 6. flags: `-p`, `-m`, `-ssm`, `-lsm`, `-h`, `-n`.
//!
//! A key with no value does not override a lower source. `${NAME:default}` in a value we use is
//! resolved from the environment, then from other keys. Seata keys we do not act on are returned
//! in [`Settings::ignored_keys`]; unknown keys and bad values are errors that name the key and
//! the source. Loading never touches the process environment: it is passed in as a map.
//!
//! ```no_run
//! let cli = seata_server::config::Cli::parse_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
//! let settings = seata_server::config::load(&cli, &seata_server::config::process_env())?;
//! # Ok::<(), seata_server::config::ConfigError>(())
//! ```

mod cli;
mod error;
mod hocon;
mod host;
mod keys;
mod settings;
mod source;
mod typed;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use cli::Cli;
pub use error::{ConfigError, Origin};
pub use host::detect_host;
pub use settings::{
    AuthSettings, ConsoleSettings, DbStoreSettings, DbType, FileStoreSettings, FlushDiskMode, IgnoredKey, LogFormat,
    LogLevel, LogSettings, MetricsExporter, MetricsRegistryType, MetricsSettings, RecoverySettings, Secret,
    SecuritySettings, ServerSettings, SessionSettings, Settings, StoreMode, StoreSettings, TransportLimits,
    TransportSettings, UndoSettings,
};

use keys::{normalize, LEGACY_EXPOSED};
use source::{read_file, yaml_entries, Entry, RawValue};

/// Where the yml is looked for when `--config` is not given.
const DEFAULT_CONFIG: &str = "conf/application.yml";

/// Used when `--config` is not given and `conf/application.yml` does not exist.
const EMBEDDED_CONFIG: &str = include_str!("../../conf/application.yml");

/// Loads the settings from every source (see the module docs), detecting the host address
/// when neither `--host` nor `SEATA_IP` gives it.
///
/// # Errors
///
/// A file that cannot be read or parsed, an unknown key, a bad value, or values that do not
/// fit together; the error names the source and the key.
pub fn load(cli: &Cli, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    load_with(cli, env, detect_host)
}

/// As [`load`], with the host detection supplied (tests pass a fixed answer).
///
/// # Errors
///
/// As [`load`].
pub fn load_with(
    cli: &Cli,
    env: &HashMap<String, String>,
    detect_host: impl FnOnce() -> Option<Ipv4Addr>,
) -> Result<Settings, ConfigError> {
    let mut layers = Vec::new();
    let mut ignored = Vec::new();
    let mut files = Vec::new();

    let (yml, legacy) = locate(cli, env)?;
    if let Some(path) = legacy {
        load_legacy(&path, &mut layers, &mut ignored, &mut files)?;
    }
    match yml {
        Yml::File(path) => {
            let text = read_file(&path)?;
            layers.push(yaml_entries(&text, &Origin::File(path.clone()))?);
            files.push(path);
        }
        Yml::Embedded => layers.push(yaml_entries(EMBEDDED_CONFIG, &Origin::Embedded)?),
        Yml::Absent => {}
    }
    layers.push(spring_env_entries(env));
    layers.push(seata_env_entries(env, &mut ignored));
    layers.push(flag_entries(cli));

    let merged = typed::Merged::new(layers, ignored)?;
    typed::build(merged, cli, env, detect_host, files)
}

/// The process environment as a map, skipping variables that are not valid UTF-8
/// (`std::env::vars` would panic on them).
#[must_use]
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

enum Yml {
    File(PathBuf),
    Embedded,
    /// `--config` named a legacy `.conf` file.
    Absent,
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Which yml and which legacy registry file to read.
fn locate(cli: &Cli, env: &HashMap<String, String>) -> Result<(Yml, Option<PathBuf>), ConfigError> {
    let yml = match &cli.config {
        Some(path) if has_extension(path, "conf") => return Ok((Yml::Absent, Some(path.clone()))),
        Some(path) if has_extension(path, "properties") => {
            return Err(ConfigError::Syntax {
                origin: Origin::File(path.clone()),
                message: "properties files are not supported; use application.yml or a .conf file".to_owned(),
            })
        }
        Some(path) => Yml::File(path.clone()),
        None if Path::new(DEFAULT_CONFIG).is_file() => Yml::File(PathBuf::from(DEFAULT_CONFIG)),
        None => Yml::Embedded,
    };
    let dir = match &yml {
        Yml::File(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        _ => PathBuf::from("conf"),
    };
    let legacy = registry_next_to(&dir, cli, env)?;
    Ok((yml, legacy))
}

/// `registry.conf` (or `SEATA_CONFIG_NAME`, suffixed `-<env>`) in `dir`, if it exists. A name
/// given in `SEATA_CONFIG_NAME` must exist.
fn registry_next_to(dir: &Path, cli: &Cli, env: &HashMap<String, String>) -> Result<Option<PathBuf>, ConfigError> {
    let configured = env.get("SEATA_CONFIG_NAME").map(|s| s.trim()).filter(|s| !s.is_empty());
    let mut name = configured.unwrap_or("registry");
    name = name.strip_prefix("file:").unwrap_or(name);
    let lower = name.to_ascii_lowercase();
    if [".yml", ".yaml", ".properties"].iter().any(|ext| lower.ends_with(ext)) {
        return Err(ConfigError::InvalidValue {
            origin: Origin::Env,
            key: "SEATA_CONFIG_NAME".to_owned(),
            message: format!("\"{name}\": only .conf registry files are supported"),
        });
    }
    if lower.ends_with(".conf") {
        name = &name[..name.len() - ".conf".len()];
    }
    let seata_env = cli
        .seata_env
        .as_deref()
        .or_else(|| env.get("SEATA_ENV").map(String::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let file_name = match seata_env {
        Some(suffix) => format!("{name}-{suffix}.conf"),
        None => format!("{name}.conf"),
    };
    let path = dir.join(file_name); // an absolute name replaces `dir`
    if path.is_file() {
        Ok(Some(path))
    } else if configured.is_some() {
        Err(ConfigError::Read {
            path,
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "named by SEATA_CONFIG_NAME but not found"),
        })
    } else {
        Ok(None)
    }
}

/// Reads a legacy file. A `registry.conf` (it has a `registry` or `config` block) also brings
/// in the `file.conf` its `config.file.name` names, when `config.type` is `file`.
fn load_legacy(
    path: &Path,
    layers: &mut Vec<Vec<Entry>>,
    ignored: &mut Vec<IgnoredKey>,
    files: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    let pairs = parse_conf(path)?;
    let top = |key: &str| normalize(key.split('.').next().unwrap_or_default());
    let is_registry = pairs.iter().any(|(key, _)| top(key) == "registry" || top(key) == "config");
    let scalar = |wanted: &str| {
        pairs.iter().rev().find_map(|(key, value)| match value {
            RawValue::Scalar(s) if normalize(key) == wanted => Some(s.trim().to_owned()),
            _ => None,
        })
    };
    let file_conf = if is_registry {
        let config_type = scalar("config.type").unwrap_or_else(|| "file".to_owned());
        config_type.eq_ignore_ascii_case("file").then(|| {
            let name = scalar("config.file.name").unwrap_or_else(|| "file.conf".to_owned());
            let name = name.strip_prefix("file:").unwrap_or(&name).to_owned();
            path.parent().unwrap_or(Path::new("")).join(name)
        })
    } else {
        None
    };
    let origin = Origin::File(path.to_path_buf());
    let pairs = pairs.into_iter().filter(|(key, _)| normalize(key) != "config.file.name");
    layers.push(legacy_entries(pairs, &origin, ignored));
    files.push(path.to_path_buf());

    if let Some(file_conf) = file_conf {
        let pairs = parse_conf(&file_conf)?;
        let origin = Origin::File(file_conf.clone());
        layers.push(legacy_entries(pairs.into_iter(), &origin, ignored));
        files.push(file_conf);
    }
    Ok(())
}

fn parse_conf(path: &Path) -> Result<Vec<(String, RawValue)>, ConfigError> {
    let text = read_file(path)?;
    hocon::parse(&text).map_err(|message| ConfigError::Syntax { origin: Origin::File(path.to_path_buf()), message })
}

/// Legacy keys under the blocks Seata exposes become `seata.<key>`; the rest are ignored, as
/// Seata ignores them.
fn legacy_entries(
    pairs: impl Iterator<Item = (String, RawValue)>,
    origin: &Origin,
    ignored: &mut Vec<IgnoredKey>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        let top = normalize(key.split('.').next().unwrap_or_default());
        if LEGACY_EXPOSED.contains(&top.as_str()) {
            out.push(Entry { key: format!("seata.{key}"), written: key, value, origin: origin.clone() });
        } else {
            ignored.push(IgnoredKey { key, origin: origin.clone() });
        }
    }
    out
}

fn env_entry(key: &str, var: &str, value: &str) -> Entry {
    Entry {
        key: key.to_owned(),
        written: var.to_owned(),
        value: RawValue::Scalar(value.trim().to_owned()),
        origin: Origin::Env,
    }
}

/// Spring relaxed binding: `SEATA_STORE_DB_URL` sets `seata.store.db.url`. Only keys we act on
/// are looked up, so unrelated variables never matter. Empty variables are not set.
fn spring_env_entries(env: &HashMap<String, String>) -> Vec<Entry> {
    keys::KEYS
        .iter()
        .filter_map(|key| {
            keys::env_names(key)
                .iter()
                .find_map(|var| env.get(var).filter(|v| !v.trim().is_empty()).map(|v| env_entry(key, var, v)))
        })
        .collect()
}

/// seata-server's own variables. Kubernetes injects `SEATA_PORT=tcp://ip:port` for a service
/// named `seata`; seata-server ignores such a value, and so do we (listing it as ignored).
fn seata_env_entries(env: &HashMap<String, String>, ignored: &mut Vec<IgnoredKey>) -> Vec<Entry> {
    let mut out = Vec::new();
    for (var, key) in [
        ("SEATA_PORT", "seata.server.service-port"),
        ("STORE_MODE", "seata.store.mode"),
        ("SESSION_STORE_MODE", "seata.store.session.mode"),
        ("LOCK_STORE_MODE", "seata.store.lock.mode"),
    ] {
        let Some(value) = env.get(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        if var == "SEATA_PORT" && value.trim().starts_with("tcp://") {
            ignored.push(IgnoredKey { key: format!("SEATA_PORT={}", value.trim()), origin: Origin::Env });
            continue;
        }
        out.push(env_entry(key, var, value));
    }
    out
}

fn flag_entries(cli: &Cli) -> Vec<Entry> {
    let port = cli.port.map(|p| p.to_string());
    [
        ("--port", "seata.server.service-port", port.as_deref()),
        ("--storeMode", "seata.store.mode", cli.store_mode.as_deref()),
        ("--sessionStoreMode", "seata.store.session.mode", cli.session_store_mode.as_deref()),
        ("--lockStoreMode", "seata.store.lock.mode", cli.lock_store_mode.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, key, value)| {
        value.map(|v| Entry {
            key: key.to_owned(),
            written: flag.to_owned(),
            value: RawValue::Scalar(v.trim().to_owned()),
            origin: Origin::CommandLine,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads() {
        let layers = vec![yaml_entries(EMBEDDED_CONFIG, &Origin::Embedded).unwrap()];
        let merged = typed::Merged::new(layers, Vec::new()).unwrap();
        let s = typed::build(merged, &Cli::default(), &HashMap::new(), || None, Vec::new()).unwrap();
        assert_eq!((s.server_port, s.service_port), (7091, 8091));
        assert_eq!(s.store.mode, StoreMode::File);
        assert_eq!(s.host, "127.0.0.1");
        assert!(s.ignored_keys.is_empty());
    }

    #[test]
    fn registry_name_from_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("reg-prod.conf"), "").unwrap();
        let e: HashMap<String, String> = [("SEATA_CONFIG_NAME", "file:reg.conf"), ("SEATA_ENV", "prod")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found = registry_next_to(dir.path(), &Cli::default(), &e).unwrap();
        assert_eq!(found, Some(dir.path().join("reg-prod.conf")));
        let e: HashMap<String, String> = [("SEATA_CONFIG_NAME".to_owned(), "registry.yml".to_owned())].into();
        assert!(registry_next_to(dir.path(), &Cli::default(), &e).is_err());
        assert_eq!(registry_next_to(dir.path(), &Cli::default(), &HashMap::new()).unwrap(), None);
    }
}
