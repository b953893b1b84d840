//! seata-server's command line (`server/ParameterParser.java`), plus `--config`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// Command-line flags. `-h` is `--host`, as in seata-server; help is `--help` only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(
    name = "seata-server",
    about = "A drop-in Apache Seata transaction coordinator (TC)",
    disable_help_flag = true
)]
pub struct Cli {
    /// Address written into XIDs and announced to clients (IPv4 or host name); env SEATA_IP.
    #[arg(short = 'h', long = "host", value_name = "IP")]
    pub host: Option<String>,

    /// RPC port; env SEATA_PORT; default seata.server.service-port, else server.port + 1000.
    #[arg(short = 'p', long = "port", value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Store mode for sessions and locks: file or db; env STORE_MODE.
    #[arg(short = 'm', long = "storeMode", value_name = "MODE")]
    pub store_mode: Option<String>,

    /// Worker id 0..=1023 used in transaction and branch ids; env SERVER_NODE.
    #[arg(short = 'n', long = "serverNode", value_name = "ID",
          value_parser = clap::value_parser!(u16).range(0..=1023))]
    pub server_node: Option<u16>,

    /// Environment name: reads registry-ENV.conf instead of registry.conf; env SEATA_ENV.
    #[arg(short = 'e', long = "seataEnv", value_name = "ENV")]
    pub seata_env: Option<String>,

    /// Session store mode (short form -ssm); env SESSION_STORE_MODE.
    #[arg(long = "sessionStoreMode", value_name = "MODE")]
    pub session_store_mode: Option<String>,

    /// Lock store mode (short form -lsm); env LOCK_STORE_MODE.
    #[arg(long = "lockStoreMode", value_name = "MODE")]
    pub lock_store_mode: Option<String>,

    /// Configuration file: an application.yml (default conf/application.yml) or a legacy registry.conf / file.conf.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

impl Cli {
    /// Parses a full argv (program name first). seata-server's multi-letter short flags
    /// `-ssm` and `-lsm` are accepted. On `--help` the error's kind is `DisplayHelp`: call
    /// `exit()` on it.
    ///
    /// # Errors
    ///
    /// Unknown flags, missing or malformed values, `--help`.
    pub fn parse_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(rewrite_multi_letter_flags(args))
    }
}

/// Rewrites `-ssm`/`-lsm` (and `-ssm=x`) to their long forms, since a clap short flag is one letter.
fn rewrite_multi_letter_flags<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    const REWRITES: &[(&str, &str)] = &[("-ssm", "--sessionStoreMode"), ("-lsm", "--lockStoreMode")];
    let mut out = Vec::new();
    let mut after_separator = false;
    for arg in args {
        let arg: OsString = arg.into();
        if after_separator {
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            if s == "--" {
                return None;
            }
            REWRITES.iter().find_map(|(short, long)| {
                if s == *short {
                    Some(OsString::from(*long))
                } else {
                    s.strip_prefix(short)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(|value| OsString::from(format!("{long}={value}")))
                }
            })
        });
        if arg.to_str() == Some("--") {
            after_separator = true;
        }
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_from_args(std::iter::once("seata-server").chain(args.iter().copied()))
    }

    #[test]
    fn seata_short_flags() {
        let cli = parse(&["-h", "10.0.0.1", "-p", "8092", "-ssm", "db"]).unwrap();
        assert_eq!(cli.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(cli.port, Some(8092));
        assert_eq!(cli.session_store_mode.as_deref(), Some("db"));

        let cli = parse(&["-m", "db", "-n", "7", "-e", "dev", "-lsm=file"]).unwrap();
        assert_eq!(cli.store_mode.as_deref(), Some("db"));
        assert_eq!(cli.server_node, Some(7));
        assert_eq!(cli.seata_env.as_deref(), Some("dev"));
        assert_eq!(cli.lock_store_mode.as_deref(), Some("file"));
    }

    #[test]
    fn long_flags() {
        let cli = parse(&[
            "--host=10.0.0.2",
            "--port",
            "9000",
            "--storeMode",
            "file",
            "--serverNode",
            "1023",
            "--seataEnv",
            "prod",
            "--sessionStoreMode",
            "db",
            "--lockStoreMode",
            "db",
            "--config",
            "x.yml",
        ])
        .unwrap();
        assert_eq!(cli.host.as_deref(), Some("10.0.0.2"));
        assert_eq!(cli.port, Some(9000));
        assert_eq!(cli.server_node, Some(1023));
        assert_eq!(cli.config, Some(PathBuf::from("x.yml")));
        assert_eq!(cli.lock_store_mode.as_deref(), Some("db"));
    }

    #[test]
    fn no_flags_is_all_none() {
        assert_eq!(parse(&[]).unwrap(), Cli::default());
    }

    #[test]
    fn help_is_long_only() {
        let err = parse(&["--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        // -h needs a value: it is the host, not help.
        assert_eq!(parse(&["-h"]).unwrap_err().kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn bad_flags_are_errors() {
        for args in [&["-n", "1024"][..], &["-p", "0"], &["-p", "70000"], &["-p", "x"], &["--nope"], &["extra"]] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn separator_stops_rewriting() {
        let args = rewrite_multi_letter_flags(["x", "-ssm", "--", "-lsm"]);
        assert_eq!(args, ["x", "--sessionStoreMode", "--", "-lsm"]);
    }
}
