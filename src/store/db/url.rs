//! Database URLs as Seata users write them: JDBC URLs (`jdbc:mysql://…`, `jdbc:mariadb://…`,
//! `jdbc:postgresql://…`) and plain ones (`mysql://`, `mariadb://`, `postgres://`,
//! `postgresql://`).
//!
//! Only what a connection needs is taken from the URL: the first host and port, the database,
//! user and password (in the user-info part or as `user`/`password` parameters), TLS mode
//! (`sslMode`, `useSSL`, `requireSSL` for MySQL; `sslmode` for PostgreSQL) and, for PostgreSQL,
//! `currentSchema` and `ApplicationName`. Other parameters (`rewriteBatchedStatements`,
//! `characterEncoding`, `serverTimezone`, …) tune the Java driver and are ignored. Failover
//! host lists (`h1:3306,h2:3306`) use the first host.
//!
//! [`DbUrl`]'s `Display` and [`DbUrl::redacted`] never show the password.

use std::fmt;

use crate::config::Secret;

use super::conn::Dialect;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database URL: {0}")]
pub struct UrlError(String);

fn err(message: impl Into<String>) -> UrlError {
    UrlError(message.into())
}

/// TLS use asked for by the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never use TLS.
    Disable,
    /// Use TLS if the server offers it.
    Prefer,
    /// Require TLS, without checking the certificate.
    Require,
    /// Require TLS and check the certificate authority.
    VerifyCa,
    /// Require TLS and check the certificate and the host name.
    VerifyFull,
}

/// A parsed database URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// The dialect the URL names.
    pub dialect: Dialect,
    /// The scheme as written, e.g. `jdbc:mysql` or `postgres` (for messages).
    pub scheme: String,
    /// The host (the first one of a failover list); IPv6 addresses without brackets.
    pub host: String,
    /// The port (3306 or 5432 when absent).
    pub port: u16,
    /// Further hosts of a failover list, ignored.
    pub ignored_hosts: Vec<String>,
    /// The database name, if any.
    pub database: Option<String>,
    /// The user from the URL, if any.
    pub user: Option<String>,
    /// The password from the URL, if any.
    pub password: Option<Secret>,
    /// TLS mode, if the URL sets one.
    pub tls: Option<TlsMode>,
    /// PostgreSQL `currentSchema`: the schema searched for unqualified table names.
    pub schema: Option<String>,
    /// PostgreSQL `ApplicationName`.
    pub application_name: Option<String>,
    /// Parameters that were not used (names only matter for the log).
    pub ignored_params: Vec<String>,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DbUrl {
    /// Parses a JDBC or plain URL.
    pub fn parse(url: &str) -> Result<DbUrl, UrlError> {
        let url = url.trim();
        let (scheme, rest) = split_scheme(url)?;
        let dialect = dialect_of(&scheme)?;
        let default_port = match dialect {
            Dialect::MySql => 3306,
            Dialect::Postgres => 5432,
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = if let Some(after) = body.strip_prefix("//") {
            match after.find('/') {
                Some(i) => (after.get(..i).unwrap_or_default(), after.get(i + 1..).unwrap_or_default()),
                None => (after, ""),
            }
        } else if dialect == Dialect::Postgres && scheme.starts_with("jdbc:") {
            // jdbc:postgresql:database and jdbc:postgresql:/ (local server).
            ("", body.trim_start_matches('/'))
        } else {
            return Err(err(format!("expected `{scheme}://host[:port]/database`")));
        };

        let (user_info, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut parsed = DbUrl {
            dialect,
            scheme: scheme.clone(),
            host: "localhost".to_owned(),
            port: default_port,
            ignored_hosts: Vec::new(),
            database: None,
            user: None,
            password: None,
            tls: None,
            schema: None,
            application_name: None,
            ignored_params: Vec::new(),
        };
        if let Some(info) = user_info {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !user.is_empty() {
                parsed.user = Some(decode(user)?);
            }
            if let Some(p) = password {
                parsed.password = Some(Secret::new(decode(p)?));
            }
        }
        let mut host_list = split_hosts(hosts).into_iter();
        if let Some(first) = host_list.next() {
            let (host, port) = host_port(first, default_port)?;
            if !host.is_empty() {
                parsed.host = host;
            }
            parsed.port = port;
        }
        parsed.ignored_hosts = host_list.map(str::to_owned).collect();
        let path = path.trim_end_matches('/');
        if path.contains('/') {
            return Err(err(format!("unexpected path `/{path}` after the database name")));
        }
        if !path.is_empty() {
            parsed.database = Some(decode(path)?);
        }
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value)?;
            parsed.param(key, value)?;
        }
        Ok(parsed)
    }

    fn param(&mut self, key: &str, value: String) -> Result<(), UrlError> {
        let tls = |v: &str| -> Result<TlsMode, UrlError> {
            Ok(match v.to_ascii_lowercase().replace('_', "-").as_str() {
                "disable" | "disabled" | "false" => TlsMode::Disable,
                "allow" | "prefer" | "preferred" => TlsMode::Prefer,
                "require" | "required" | "true" => TlsMode::Require,
                "verify-ca" => TlsMode::VerifyCa,
                "verify-full" | "verify-identity" => TlsMode::VerifyFull,
                other => return Err(err(format!("unknown TLS mode `{other}` in `{key}`"))),
            })
        };
        let flag = |v: &str| v.eq_ignore_ascii_case("true") || v == "1" || v.eq_ignore_ascii_case("yes");
        match (self.dialect, key) {
            (_, "user") => self.user = Some(value),
            (_, "password") => self.password = Some(Secret::new(value)),
            (Dialect::MySql, "sslMode" | "sslmode" | "ssl-mode") | (Dialect::Postgres, "sslmode" | "ssl-mode") => {
                self.tls = Some(tls(&value)?);
            }
            (Dialect::MySql, "useSSL" | "requireSSL") => {
                self.tls = match (key, flag(&value)) {
                    ("useSSL", false) => Some(TlsMode::Disable),
                    ("useSSL", true) => Some(self.tls.unwrap_or(TlsMode::Prefer)),
                    (_, true) => Some(TlsMode::Require),
                    (_, false) => self.tls,
                };
            }
            (Dialect::Postgres, "ssl") => {
                if flag(&value) {
                    self.tls = Some(self.tls.unwrap_or(TlsMode::VerifyFull));
                }
            }
            (Dialect::Postgres, "currentSchema") => {
                self.schema = Some(value.split(',').next().unwrap_or_default().trim().to_owned());
            }
            (Dialect::Postgres, "ApplicationName" | "application_name") => self.application_name = Some(value),
            _ => self.ignored_params.push(key.to_owned()),
        }
        Ok(())
    }

    /// The URL in plain form without the password, for logs: `mysql://user@host:port/db`.
    pub fn redacted(&self) -> String {
        let scheme = match self.dialect {
            Dialect::MySql => "mysql",
            Dialect::Postgres => "postgres",
        };
        let user = self.user.as_deref().map(|u| format!("{}@", encode(u))).unwrap_or_default();
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let db = self.database.as_deref().map(encode).unwrap_or_default();
        format!("{scheme}://{user}{host}:{}/{db}", self.port)
    }
}

fn split_scheme(url: &str) -> Result<(String, &str), UrlError> {
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("jdbc:") {
        // jdbc:<driver>[:<sub-protocol>]:<rest>, e.g. jdbc:mysql:loadbalance://h/db
        let driver_end = rest.find(':').ok_or_else(|| err("missing driver after `jdbc:`"))?;
        let driver = rest.get(..driver_end).unwrap_or_default();
        let mut start = "jdbc:".len() + driver_end + 1;
        let after = lower.get(start..).unwrap_or_default();
        if !after.starts_with("//") {
            if let Some(sub_end) = after.find("://") {
                let sub = after.get(..sub_end).unwrap_or_default();
                if sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-') {
                    if sub.contains("srv") {
                        return Err(err("DNS SRV URLs (`jdbc:mysql+srv:`) are not supported"));
                    }
                    start += sub_end + 1;
                }
            }
        }
        if driver.contains("srv") {
            return Err(err("DNS SRV URLs (`jdbc:mysql+srv:`) are not supported"));
        }
        return Ok((format!("jdbc:{driver}"), url.get(start..).unwrap_or_default()));
    }
    match lower.find("://") {
        Some(i) => Ok((lower.get(..i).unwrap_or_default().to_owned(), url.get(i + 1..).unwrap_or_default())),
        None => Err(err("expected `jdbc:mysql://…`, `jdbc:postgresql://…`, `mysql://…` or `postgres://…`")),
    }
}

fn dialect_of(scheme: &str) -> Result<Dialect, UrlError> {
    match scheme {
        "jdbc:mysql" | "jdbc:mariadb" | "mysql" | "mariadb" => Ok(Dialect::MySql),
        "jdbc:postgresql" | "postgres" | "postgresql" => Ok(Dialect::Postgres),
        other => Err(err(format!("unsupported database `{other}` (MySQL, MariaDB and PostgreSQL are supported)"))),
    }
}

/// Splits `h1:1,h2:2` on commas outside IPv6 brackets.
fn split_hosts(hosts: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in hosts.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(hosts.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(hosts.get(start..).unwrap_or_default());
    out.retain(|h| !h.is_empty());
    out
}

fn host_port(spec: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    if spec.starts_with('(') || spec.starts_with("address=") {
        return Err(err("the `address=(host=…)(port=…)` form is not supported; use host:port"));
    }
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(|| err(format!("unclosed `[` in `{spec}`")))?;
        let host = rest.get(..end).unwrap_or_default();
        let after = rest.get(end + 1..).unwrap_or_default();
        (host, after.strip_prefix(':'))
    } else {
        match spec.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (spec, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse().map_err(|_| err(format!("bad port `{p}`")))?,
    };
    Ok((decode(host)?, port))
}

/// Percent-decodes `s` (`+` stays a plus, as in URL paths).
fn decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let value = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| err("bad %-escape"))?;
            out.push(value);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err("%-escapes do not form UTF-8"))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> DbUrl {
        DbUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn seata_default_jdbc_url() {
        let u = parse("jdbc:mysql://127.0.0.1:3306/seata?rewriteBatchedStatements=true");
        assert_eq!(u.dialect, Dialect::MySql);
        assert_eq!((u.host.as_str(), u.port, u.database.as_deref()), ("127.0.0.1", 3306, Some("seata")));
        assert_eq!(u.ignored_params, vec!["rewriteBatchedStatements"]);
        assert_eq!(u.redacted(), "mysql://127.0.0.1:3306/seata");
    }

    #[test]
    fn mariadb_and_sub_protocols() {
        let u = parse("jdbc:mariadb://db.local/seata");
        assert_eq!((u.dialect, u.host.as_str(), u.port), (Dialect::MySql, "db.local", 3306));
        let u = parse("jdbc:mysql:loadbalance://h1:3307,h2:3308/seata?useSSL=false");
        assert_eq!((u.host.as_str(), u.port), ("h1", 3307));
        assert_eq!(u.ignored_hosts, vec!["h2:3308"]);
        assert_eq!(u.tls, Some(TlsMode::Disable));
        let u = parse("jdbc:mariadb:failover://h1,h2/seata");
        assert_eq!(u.host, "h1");
        assert!(DbUrl::parse("jdbc:mysql+srv://_mysql._tcp.example.com/seata").is_err());
        assert!(DbUrl::parse("jdbc:mysql://address=(host=h)(port=1)/seata").is_err());
    }

    #[test]
    fn postgres_forms() {
        let u = parse("jdbc:postgresql://10.0.0.5:5433/seata?currentSchema=tc,public&sslmode=require");
        assert_eq!(u.dialect, Dialect::Postgres);
        assert_eq!((u.host.as_str(), u.port, u.database.as_deref()), ("10.0.0.5", 5433, Some("seata")));
        assert_eq!(u.schema.as_deref(), Some("tc"));
        assert_eq!(u.tls, Some(TlsMode::Require));
        let u = parse("jdbc:postgresql:seata");
        assert_eq!((u.host.as_str(), u.port, u.database.as_deref()), ("localhost", 5432, Some("seata")));
        let u = parse("jdbc:postgresql://[::1]/seata");
        assert_eq!((u.host.as_str(), u.port), ("::1", 5432));
        assert_eq!(u.redacted(), "postgres://[::1]:5432/seata");
        let u = parse("jdbc:postgresql://host/");
        assert_eq!(u.database, None);
    }

    #[test]
    fn plain_urls_with_credentials() {
        let u = parse("postgres://root:p%40ss@127.0.0.1:5432/test");
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(u.redacted(), "postgres://root@127.0.0.1:5432/test");
        assert!(!format!("{u:?} {u}").contains("p@ss"));
        let u = parse("mysql://root@127.0.0.1:3306/test");
        assert_eq!((u.dialect, u.user.as_deref(), u.password.is_none()), (Dialect::MySql, Some("root"), true));
        let u = parse("mariadb://localhost/test");
        assert_eq!((u.dialect, u.port), (Dialect::MySql, 3306));
        let u = parse("postgresql://u@h/d");
        assert_eq!(u.dialect, Dialect::Postgres);
    }

    #[test]
    fn credentials_as_parameters_are_never_shown() {
        let u = parse("jdbc:mysql://h:3306/seata?user=seata&password=s3cret&useUnicode=true");
        assert_eq!(u.user.as_deref(), Some("seata"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!u.redacted().contains("s3cret"));
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(u.ignored_params, vec!["useUnicode"]);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in [
            "",
            "127.0.0.1:3306/seata",
            "jdbc:oracle:thin:@h:1521:seata",
            "jdbc:mysql://h:port/seata",
            "jdbc:mysql://h/seata/extra",
            "jdbc:mysql://h/se%zzata",
            "jdbc:mysql://h/seata?sslMode=sometimes",
            "mysql:h/seata",
        ] {
            assert!(DbUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn scheme_case_is_ignored() {
        let u = parse("JDBC:MySQL://H:3306/Seata");
        assert_eq!((u.dialect, u.host.as_str(), u.database.as_deref()), (Dialect::MySql, "H", Some("Seata")));
    }
}
