//! Configuration loading end to end: our `conf/` files, stock seata-server files, precedence,
//! relaxed names and errors. The environment is always a map; no test touches the process's.

// Wrapped in a module so that `cargo test config` selects these tests too.
mod config {
    use std::collections::HashMap;
    use std::fs;
    use std::net::Ipv4Addr;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use seata_server::config::{load_with, Cli, ConfigError, DbType, LogLevel, Origin, Secret, Settings, StoreMode};

    const DETECTED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn cli_for(path: &Path) -> Cli {
        Cli { config: Some(path.to_path_buf()), ..Cli::default() }
    }

    fn load(cli: &Cli, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        load_with(cli, env, || Some(DETECTED))
    }

    fn load_ok(cli: &Cli, env: &HashMap<String, String>) -> Settings {
        match load(cli, env) {
            Ok(settings) => settings,
            Err(e) => panic!("load failed: {e}"),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// The stock seata-server files, when the folder with them is present next to the repository.
    fn samples() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seata/conf-samples");
        if dir.is_dir() {
            return Some(dir);
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "stock seata-server config samples not found at {} (required when CI=true)",
            dir.display()
        );
        eprintln!("skipping: stock seata-server config samples not found at {}", dir.display());
        None
    }

    fn ignored(settings: &Settings) -> Vec<String> {
        settings.ignored_keys.iter().map(|k| k.key.clone()).collect()
    }

    // ---- our own conf/ files ---------------------------------------------------------------

    #[test]
    fn every_file_in_conf_loads() {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        let mut loaded = 0;
        for entry in fs::read_dir(&conf).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if ["yml", "yaml", "conf"].contains(&ext) {
                let settings = load_ok(&cli_for(&path), &HashMap::new());
                assert!(settings.files.contains(&path), "{}", path.display());
                loaded += 1;
            }
        }
        assert!(loaded >= 2, "expected application.yml and application.example.yml");
    }

    #[test]
    fn default_conf_is_file_mode_on_7091_8091_without_secrets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/application.yml");
        let s = load_ok(&cli_for(&path), &HashMap::new());
        assert_eq!((s.server_port, s.service_port), (7091, 8091));
        assert_eq!(s.store.mode, StoreMode::File);
        assert_eq!(s.store.session_mode, StoreMode::File);
        assert_eq!(s.store.file.dir, PathBuf::from("sessionStore"));
        assert!(s.console.username.is_none() && s.console.password.is_none());
        assert!(s.security.secret_key.is_none());
        assert!(s.ignored_keys.is_empty(), "{:?}", s.ignored_keys);
        assert_eq!(s.host, DETECTED.to_string());
    }

    #[test]
    fn example_conf_is_mysql_and_lists_every_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/application.example.yml");
        let s = load_ok(&cli_for(&path), &HashMap::new());
        let d = Settings::default();
        assert_eq!(s.store.mode, StoreMode::Db);
        assert!(s.store.uses_db());
        assert_eq!(s.store.db.db_type, DbType::MySql);
        assert_eq!(s.store.db.user.as_deref(), Some("seata"));
        assert!(s.store.db.password.is_none());
        assert!(s.console.password.is_none() && s.security.secret_key.is_none());
        // Apart from the store mode and db user, the example spells out the defaults.
        assert_eq!(format!("{:?}", s.server), format!("{:?}", d.server));
        assert_eq!(format!("{:?}", s.transport), format!("{:?}", d.transport));
        assert_eq!(format!("{:?}", s.security), format!("{:?}", d.security));
        assert_eq!(format!("{:?}", s.metrics), format!("{:?}", d.metrics));
        assert_eq!(format!("{:?}", s.store.file), format!("{:?}", d.store.file));
        assert!(s.ignored_keys.is_empty(), "{:?}", s.ignored_keys);

        let s = load_ok(&cli_for(&path), &env(&[("SEATA_DB_PASSWORD", "pw"), ("SEATA_DB_USER", "u")]));
        assert_eq!(s.store.db.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(s.store.db.user.as_deref(), Some("u"));
    }

    #[test]
    fn without_config_flag_reads_conf_application_yml() {
        // Integration tests run in the package root, where conf/application.yml exists.
        let s = load_ok(&Cli::default(), &HashMap::new());
        assert_eq!(s.files, vec![PathBuf::from("conf/application.yml")]);
        assert_eq!(s.service_port, 8091);
    }

    // ---- stock seata-server files ----------------------------------------------------------

    #[test]
    fn stock_application_yml_loads() {
        let Some(dir) = samples() else { return };
        let s = load_ok(&cli_for(&dir.join("application.yml")), &HashMap::new());
        assert_eq!((s.server_port, s.service_port), (7091, 8091));
        assert_eq!(s.store.mode, StoreMode::File);
        assert_eq!(s.console.username.as_deref(), Some("seata"));
        assert_eq!(s.console.password.as_ref().map(Secret::expose), Some("seata"));
        assert!(s.security.secret_key.is_some());
        assert_eq!(s.security.token_validity, Duration::from_millis(1_800_000));
        assert!(s.security.ignore_urls.contains(&"/vgroup/v1/**".to_owned()));
        let ignored = ignored(&s);
        for key in ["spring.application.name", "logging.config", "logging.file.path"] {
            assert!(ignored.contains(&key.to_owned()), "{key} not in {ignored:?}");
        }
    }

    #[test]
    fn stock_application_example_yml_loads_with_config_centres_ignored() {
        let Some(dir) = samples() else { return };
        let s = load_ok(&cli_for(&dir.join("application.example.yml")), &HashMap::new());
        assert_eq!(s.store.mode, StoreMode::File);
        assert_eq!(s.service_port, 8091);
        assert!(s.server.application_data_limit_check);
        assert_eq!(s.server.application_data_limit, 64_000);
        assert_eq!(s.server.max_commit_retry_timeout, None);
        assert_eq!(s.server.retry_dead_threshold, Duration::from_millis(130_000));
        assert_eq!(s.server.undo.log_save_days, 7);
        assert_eq!(s.server.session.branch_async_queue_size, 5_000);
        assert_eq!(s.store.db.min_conn, 10);
        assert_eq!(s.store.db.query_limit, 1_000);
        assert_eq!(s.store.db.distributed_lock_table.as_deref(), Some("distributed_lock"));
        assert!(!s.metrics.enabled);
        assert_eq!(s.metrics.exporter_prometheus_port, 9898);
        assert_eq!(s.transport.shutdown_wait, Duration::from_secs(3));
        let ignored = ignored(&s);
        for key in [
            "seata.config.nacos.server-addr",
            "seata.registry.nacos.application",
            "seata.registry.preferred-networks",
            "seata.store.redis.single.host",
            "seata.transport.thread-factory.boss-thread-size",
        ] {
            assert!(ignored.contains(&key.to_owned()), "{key} not in {ignored:?}");
        }
    }

    #[test]
    fn stock_registry_conf_and_file_conf_load() {
        let Some(dir) = samples() else { return };
        let s = load_ok(&cli_for(&dir.join("registry.conf")), &HashMap::new());
        assert_eq!(s.files, vec![dir.join("registry.conf"), dir.join("file.conf")]);
        assert_eq!(s.store.mode, StoreMode::File);
        assert_eq!(s.store.db.query_limit, 100);
        assert_eq!(s.store.db.min_conn, 5);
        assert_eq!(s.store.db.max_conn, 100);
        assert_eq!(s.store.db.user.as_deref(), Some("mysql"));
        assert_eq!(s.store.db.max_wait, Duration::from_millis(5_000));
        assert_eq!(s.store.file.max_global_session_size, 512);
        // No server.port in legacy files: the RPC port falls back to 7091 + 1000.
        assert_eq!(s.service_port, 8091);
        let ignored = ignored(&s);
        for key in ["registry.nacos.serverAddr", "config.zk.nodePath", "store.publicKey", "store.redis.single.host"] {
            assert!(ignored.contains(&key.to_owned()), "{key} not in {ignored:?}");
        }

        // file.conf on its own.
        let s = load_ok(&cli_for(&dir.join("file.conf")), &HashMap::new());
        assert_eq!(s.files, vec![dir.join("file.conf")]);
        assert_eq!(s.store.db.query_limit, 100);
    }

    #[test]
    fn stock_files_side_by_side_yml_wins_over_file_conf() {
        let Some(samples) = samples() else { return };
        let dir = tempdir();
        for name in ["registry.conf", "file.conf"] {
            fs::copy(samples.join(name), dir.path().join(name)).unwrap();
        }
        let yml = write(dir.path(), "application.yml", "seata:\n  store:\n    db:\n      query-limit: 250\n");
        let s = load_ok(&cli_for(&yml), &HashMap::new());
        assert_eq!(s.store.db.query_limit, 250);
        assert_eq!(s.store.db.min_conn, 5);
        assert_eq!(s.files.len(), 3);
    }

    #[test]
    fn every_key_of_stock_config_txt_is_known() {
        // config.txt holds Seata's flat keys as `key=value` lines, which the legacy parser reads.
        // Loaded as a file.conf, none of its server keys may be unknown.
        let Some(samples) = samples() else { return };
        let dir = tempdir();
        let conf = dir.path().join("config-txt.conf");
        fs::copy(samples.join("config.txt"), &conf).unwrap();
        let s = load_ok(&cli_for(&conf), &HashMap::new());
        assert_eq!(s.store.db.query_limit, 100);
        assert_eq!(s.store.db.min_conn, 5);
        assert_eq!(s.store.db.max_conn, 30);
        assert_eq!(s.transport.rpc_tc_request_timeout, Duration::from_secs(30));
        assert_eq!(s.transport.shutdown_wait, Duration::from_secs(3));
        assert_eq!(s.server.distributed_lock_expire_time, Duration::from_secs(10));
        assert!(s.metrics.enabled);
        let ignored = ignored(&s);
        for key in ["client.rm.lock.retryTimes", "server.raft.applyBatch", "transport.threadFactory.bossThreadSize"] {
            assert!(ignored.contains(&key.to_owned()), "{key} not in {ignored:?}");
        }
    }

    // ---- precedence --------------------------------------------------------------------------

    const FILE_CONF: &str = r#"
    server { servicePort = 8100 }
    store {
      mode = "db"
      db { url = "jdbc:mysql://legacy:3306/seata", minConn = 2, maxConn = 20 }
    }
    "#;

    const REGISTRY_CONF: &str =
        "registry { type = \"file\" }\nconfig { type = \"file\"\n file { name = \"file.conf\" } }\n";

    /// A directory with registry.conf + file.conf and an application.yml with `yml`.
    fn legacy_and_yml(yml: &str) -> (tempfile::TempDir, Cli) {
        let dir = tempdir();
        write(dir.path(), "registry.conf", REGISTRY_CONF);
        write(dir.path(), "file.conf", FILE_CONF);
        let path = write(dir.path(), "application.yml", yml);
        let cli = cli_for(&path);
        (dir, cli)
    }

    #[test]
    fn rpc_port_precedence() {
        let (_dir, cli) = legacy_and_yml("");
        assert_eq!(load_ok(&cli, &HashMap::new()).service_port, 8100, "file.conf");

        let (_dir, cli) = legacy_and_yml("server:\n  port: 7000\n");
        let s = load_ok(&cli, &HashMap::new());
        assert_eq!((s.server_port, s.service_port), (7000, 8100), "file.conf beats server.port + 1000");

        let dir = tempdir();
        let only_port = cli_for(&write(dir.path(), "application.yml", "server:\n  port: 7000\n"));
        assert_eq!(load_ok(&only_port, &HashMap::new()).service_port, 8000, "server.port + 1000");
        assert_eq!(load_ok(&Cli::default(), &HashMap::new()).service_port, 8091, "default");

        let (_dir, mut cli) = legacy_and_yml("seata:\n  server:\n    service-port: 8200\n");
        assert_eq!(load_ok(&cli, &HashMap::new()).service_port, 8200, "yml");
        let spring = env(&[("SEATA_SERVER_SERVICEPORT", "8300")]);
        assert_eq!(load_ok(&cli, &spring).service_port, 8300, "Spring env");
        let both = env(&[("SEATA_SERVER_SERVICEPORT", "8300"), ("SEATA_PORT", "8400")]);
        assert_eq!(load_ok(&cli, &both).service_port, 8400, "SEATA_PORT");
        cli.port = Some(8500);
        assert_eq!(load_ok(&cli, &both).service_port, 8500, "-p");
    }

    #[test]
    fn store_mode_precedence() {
        use StoreMode::{Db, File};
        let modes = |s: &Settings| (s.store.mode, s.store.session_mode, s.store.lock_mode);

        let dir = tempdir();
        let plain = cli_for(&write(dir.path(), "application.yml", ""));
        assert_eq!(modes(&load_ok(&plain, &HashMap::new())), (File, File, File), "default");

        let (_dir, mut cli) = legacy_and_yml("");
        assert_eq!(modes(&load_ok(&cli, &HashMap::new())), (Db, Db, Db), "file.conf");

        let (_dir2, yml_cli) = legacy_and_yml("seata:\n  store:\n    mode: file\n");
        assert_eq!(modes(&load_ok(&yml_cli, &HashMap::new())), (File, File, File), "yml");

        let e = env(&[("SEATA_STORE_MODE", "file")]);
        assert_eq!(modes(&load_ok(&cli, &e)), (File, File, File), "Spring env");
        let e = env(&[("SEATA_STORE_MODE", "file"), ("STORE_MODE", "db")]);
        assert_eq!(modes(&load_ok(&cli, &e)), (Db, Db, Db), "STORE_MODE");
        let e = env(&[("STORE_MODE", "db"), ("SESSION_STORE_MODE", "file")]);
        assert_eq!(modes(&load_ok(&cli, &e)), (Db, File, Db), "SESSION_STORE_MODE");
        let e = env(&[("STORE_MODE", "db"), ("LOCK_STORE_MODE", "file")]);
        assert_eq!(modes(&load_ok(&cli, &e)), (Db, Db, File), "LOCK_STORE_MODE");

        cli.store_mode = Some("file".to_owned());
        let e = env(&[("STORE_MODE", "db"), ("SESSION_STORE_MODE", "db")]);
        assert_eq!(modes(&load_ok(&cli, &e)), (File, Db, File), "-m");
        cli.session_store_mode = Some("file".to_owned());
        cli.lock_store_mode = Some("db".to_owned());
        assert_eq!(modes(&load_ok(&cli, &e)), (File, File, Db), "-ssm, -lsm");

        // As in seata-server, an explicit session/lock mode in the yml beats an inherited -m.
        let dir = tempdir();
        let yml = "seata:\n  store:\n    session:\n      mode: file\n";
        let mut cli = cli_for(&write(dir.path(), "application.yml", yml));
        cli.store_mode = Some("db".to_owned());
        assert_eq!(modes(&load_ok(&cli, &HashMap::new())), (Db, File, Db));
    }

    #[test]
    fn host_precedence() {
        let mut cli = Cli::default();
        assert_eq!(load_with(&cli, &HashMap::new(), || None).unwrap().host, "127.0.0.1", "fallback");
        assert_eq!(load_ok(&cli, &HashMap::new()).host, "192.0.2.7", "detected");
        let e = env(&[("SEATA_IP", "10.1.1.1")]);
        let s = load_with(&cli, &e, || -> Option<Ipv4Addr> { panic!("detection must not run") }).unwrap();
        assert_eq!(s.host, "10.1.1.1", "SEATA_IP");
        cli.host = Some("10.2.2.2".to_owned());
        assert_eq!(load_ok(&cli, &e).host, "10.2.2.2", "-h");

        cli.host = Some("::1".to_owned());
        let err = load(&cli, &e).unwrap_err().to_string();
        assert!(err.starts_with("command line: --host: "), "{err}");
        cli.host = None;
        let err = load(&cli, &env(&[("SEATA_IP", "0.0.0.0")])).unwrap_err().to_string();
        assert!(err.starts_with("environment: SEATA_IP: "), "{err}");
    }

    #[test]
    fn server_node_precedence() {
        let mut cli = Cli { host: Some("10.0.0.1".to_owned()), ..Cli::default() };
        let derived = load_ok(&cli, &HashMap::new()).server_node;
        assert!(derived <= 1023);
        assert_eq!(load_ok(&cli, &HashMap::new()).server_node, derived, "stable");
        let e = env(&[("SERVER_NODE", "12")]);
        assert_eq!(load_ok(&cli, &e).server_node, 12, "SERVER_NODE");
        cli.server_node = Some(34);
        assert_eq!(load_ok(&cli, &e).server_node, 34, "-n");

        cli.server_node = Some(1024);
        assert!(load(&cli, &e).unwrap_err().to_string().contains("--serverNode"));
        cli.server_node = None;
        let err = load(&cli, &env(&[("SERVER_NODE", "2000")])).unwrap_err().to_string();
        assert_eq!(err, "environment: SERVER_NODE: invalid value \"2000\" (expected an integer from 0 to 1023)");
    }

    #[test]
    fn command_line_parse_and_load() {
        let cli = Cli::parse_from_args(["seata-server", "-h", "10.0.0.1", "-p", "8092", "-ssm", "db"]).unwrap();
        let s = load_ok(&cli, &HashMap::new());
        assert_eq!(s.host, "10.0.0.1");
        assert_eq!(s.service_port, 8092);
        assert_eq!(s.store.session_mode, StoreMode::Db);
        assert_eq!(s.store.lock_mode, StoreMode::File);
        assert!(s.store.uses_db());
    }

    // ---- names, placeholders, ignored keys -------------------------------------------------

    #[test]
    fn relaxed_names() {
        let dir = tempdir();
        for spelling in ["service-port", "servicePort", "service_port", "SERVICE-PORT"] {
            let yml = format!("seata:\n  server:\n    {spelling}: 9001\n");
            let cli = cli_for(&write(dir.path(), "application.yml", &yml));
            assert_eq!(load_ok(&cli, &HashMap::new()).service_port, 9001, "{spelling}");
        }
        let yml =
            "seata.store.db.queryLimit: 7\nseata:\n  server:\n    recovery:\n      asynCommittingRetryPeriod: 250\n";
        let cli = cli_for(&write(dir.path(), "application.yml", yml));
        let s = load_ok(&cli, &HashMap::new());
        assert_eq!(s.store.db.query_limit, 7);
        assert_eq!(s.server.recovery.async_committing_retry_period, Duration::from_millis(250));

        let e = env(&[
            ("SEATA_SERVER_SERVICE_PORT", "9002"),
            ("SERVER_PORT", "7002"),
            ("SEATA_STORE_DB_URL", "jdbc:mysql://env/seata"),
            ("SEATA_SECURITY_SECRETKEY", "c2VjcmV0"),
            ("CONSOLE_USER_PASSWORD", "pw"),
            ("LOGGING_LEVEL_ROOT", "debug"),
        ]);
        let s = load_ok(&Cli::default(), &e);
        assert_eq!((s.server_port, s.service_port), (7002, 9002));
        assert_eq!(s.store.db.url, "jdbc:mysql://env/seata");
        assert_eq!(s.security.secret_key.as_ref().map(Secret::expose), Some("c2VjcmV0"));
        assert_eq!(s.console.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(s.log.level, LogLevel::Debug);
    }

    #[test]
    fn placeholders() {
        let dir = tempdir();
        let yml = "\
spring:
  application:
    name: seata-server
logging:
  file:
    path: ${log.home:${user.home}/logs/seata}
  level:
    root: ${LOG_LEVEL:warn}
seata:
  server:
    service-port: ${MY_RPC_PORT:8095}
  store:
    db:
      url: jdbc:mysql://${DB_HOST:localhost}:3306/seata
      user: ${spring.application.name}-user
    ";
        let cli = cli_for(&write(dir.path(), "application.yml", yml));
        let s = load_ok(&cli, &HashMap::new());
        assert_eq!(s.service_port, 8095);
        assert_eq!(s.log.level, LogLevel::Warn);
        assert_eq!(s.store.db.url, "jdbc:mysql://localhost:3306/seata");
        assert_eq!(s.store.db.user.as_deref(), Some("seata-server-user"));
        let s = load_ok(&cli, &env(&[("MY_RPC_PORT", "8096"), ("DB_HOST", "db1")]));
        assert_eq!(s.service_port, 8096);
        assert_eq!(s.store.db.url, "jdbc:mysql://db1:3306/seata");

        let cli = cli_for(&write(dir.path(), "application.yml", "seata:\n  store:\n    mode: ${NOT_SET}\n"));
        let err = load(&cli, &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("seata.store.mode: placeholder `${NOT_SET}`"), "{err}");
    }

    #[test]
    fn kubernetes_service_link_in_seata_port_is_ignored() {
        let s = load_ok(&Cli::default(), &env(&[("SEATA_PORT", "tcp://10.96.0.12:8091")]));
        assert_eq!(s.service_port, 8091);
        assert!(ignored(&s).contains(&"SEATA_PORT=tcp://10.96.0.12:8091".to_owned()));
    }

    #[test]
    fn config_centre_other_than_file_is_listed_as_ignored() {
        let dir = tempdir();
        let yml =
            "seata:\n  config:\n    type: nacos\n    nacos:\n      server-addr: x:8848\n  registry:\n    type: file\n";
        let s = load_ok(&cli_for(&write(dir.path(), "application.yml", yml)), &HashMap::new());
        assert_eq!(ignored(&s), ["seata.config.nacos.server-addr", "seata.config.type=nacos"]);
    }

    #[test]
    fn seata_env_selects_registry_file() {
        let dir = tempdir();
        write(dir.path(), "registry-dev.conf", REGISTRY_CONF);
        write(dir.path(), "file.conf", FILE_CONF);
        let yml = write(dir.path(), "application.yml", "");
        let mut cli = cli_for(&yml);
        assert_eq!(load_ok(&cli, &HashMap::new()).store.mode, StoreMode::File, "no env: no registry.conf");
        assert_eq!(load_ok(&cli, &env(&[("SEATA_ENV", "dev")])).store.mode, StoreMode::Db);
        cli.seata_env = Some("dev".to_owned());
        assert_eq!(load_ok(&cli, &HashMap::new()).store.mode, StoreMode::Db);

        write(dir.path(), "custom.conf", REGISTRY_CONF);
        let e = env(&[("SEATA_CONFIG_NAME", "file:custom")]);
        cli.seata_env = None;
        assert_eq!(load_ok(&cli, &e).store.mode, StoreMode::Db);
        let e = env(&[("SEATA_CONFIG_NAME", "missing")]);
        assert!(matches!(load(&cli, &e), Err(ConfigError::Read { .. })));
    }

    // ---- errors ------------------------------------------------------------------------------

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempdir();
        let path = write(dir.path(), "application.yml", "seata:\n  store:\n    modee: db\n");
        let err = load(&cli_for(&path), &HashMap::new()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownKey { origin: Origin::File(p), key } if p == &path && key == "seata.store.modee")
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: seata.store.modee: unknown key (neither a Seata key nor one of this server's extensions)",
                path.display()
            )
        );

        let path = write(dir.path(), "file.conf", "store { db { colour = \"blue\" } }\n");
        let err = load(&cli_for(&path), &HashMap::new()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: store.db.colour: unknown key", path.display())), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_source() {
        let dir = tempdir();
        let path = write(dir.path(), "application.yml", "seata:\n  store:\n    mode: foo\n");
        let err = load(&cli_for(&path), &HashMap::new()).unwrap_err().to_string();
        assert_eq!(err, format!("{}: seata.store.mode: unknown value \"foo\" (expected file, db)", path.display()));

        let cases = [
            ("seata:\n  server:\n    service-port: 70000\n", "seata.server.service-port: invalid value \"70000\""),
            ("server:\n  port: abc\n", "server.port: invalid value \"abc\""),
            ("seata:\n  store:\n    mode: redis\n", "seata.store.mode: store mode \"redis\" is not supported"),
            ("seata:\n  transport:\n    heartbeat: maybe\n", "seata.transport.heartbeat: invalid value \"maybe\""),
            (
                "seata:\n  server:\n    recovery:\n      timeout-retry-period: 0\n",
                "timeout-retry-period: invalid value \"0\"",
            ),
            ("seata:\n  store:\n    db:\n      lock-table: \"\"\n", "seata.store.db.lock-table: must not be empty"),
            ("seata:\n  store:\n    db:\n      max-conn: [1, 2]\n", "seata.store.db.max-conn: invalid value \"1,2\""),
            ("seata:\n  metrics:\n    exporter-list: prometheus,statsd\n", "unknown value \"statsd\""),
            ("seata:\n  log:\n    format: xml\n", "seata.log.format: unknown value \"xml\" (expected text, json)"),
            ("seata:\n  store: db\n", "seata.store: is a section"),
            ("seata:\n  store:\n    mode: [{a: 1}]\n", "seata.store.mode: expected a value"),
            ("- a\n- b\n", "the top level must be a mapping"),
            ("server:\n  port: 65000\n", "seata.server.service-port: not set, and server.port + 1000"),
        ];
        for (yml, expected) in cases {
            let path = write(dir.path(), "application.yml", yml);
            let err = load(&cli_for(&path), &HashMap::new()).unwrap_err().to_string();
            assert!(err.contains(expected), "{yml:?}: {err}");
        }

        let err = load(&Cli::default(), &env(&[("STORE_MODE", "foo")])).unwrap_err().to_string();
        assert_eq!(err, "environment: STORE_MODE: unknown value \"foo\" (expected file, db)");
        let cli = Cli { store_mode: Some("foo".to_owned()), ..Cli::default() };
        let err = load(&cli, &HashMap::new()).unwrap_err().to_string();
        assert_eq!(err, "command line: --storeMode: unknown value \"foo\" (expected file, db)");

        let err = load(&cli_for(Path::new("does/not/exist.yml")), &HashMap::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn db_checks_apply_only_in_db_mode() {
        let dir = tempdir();
        let yml = "seata:\n  store:\n    db:\n      db-type: oracle\n      min-conn: 50\n      max-conn: 10\n";
        let path = write(dir.path(), "application.yml", yml);
        let s = load_ok(&cli_for(&path), &HashMap::new());
        assert!(ignored(&s).contains(&"seata.store.db.db-type".to_owned()));

        let e = env(&[("STORE_MODE", "db")]);
        let err = load(&cli_for(&path), &e).unwrap_err().to_string();
        assert!(err.contains("seata.store.db.db-type: database type \"oracle\" is not supported"), "{err}");
        let path =
            write(dir.path(), "application.yml", "seata:\n  store:\n    db:\n      min-conn: 50\n      max-conn: 10\n");
        let err = load(&cli_for(&path), &e).unwrap_err().to_string();
        assert_eq!(err, "seata.store.db.min-conn: 50 is above max-conn 10");

        let path =
            write(dir.path(), "application.yml", "seata:\n  store:\n    db:\n      distributed-lock-table: \"\"\n");
        assert_eq!(load_ok(&cli_for(&path), &e).store.db.distributed_lock_table, None);
    }

    #[test]
    fn secrets_print_masked() {
        let dir = tempdir();
        let yml = "console:\n  user:\n    username: admin\n    password: hunter2-console\nseata:\n  security:\n    secretKey: hunter2-key\n  store:\n    db:\n      password: hunter2-db\n";
        let s = load_ok(&cli_for(&write(dir.path(), "application.yml", yml)), &HashMap::new());
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("MASKED"));
        let password = s.store.db.password.as_ref().unwrap();
        assert_eq!(format!("{password}"), "MASKED");
        assert_eq!(format!("{password:?}"), "MASKED");
        assert_eq!(password.expose(), "hunter2-db");
    }

    #[test]
    fn durations_and_odd_values() {
        let dir = tempdir();
        let yml = "\
seata:
  server:
    max-commit-retry-timeout: 30s
    max-rollback-retry-timeout: 0
  transport:
    shutdown:
      wait: 0
    rpc-tc-request-timeout: 30000
  security:
    ignore:
      urls: [/a, /b]
    ";
        let s = load_ok(&cli_for(&write(dir.path(), "application.yml", yml)), &HashMap::new());
        assert_eq!(s.server.max_commit_retry_timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.server.max_rollback_retry_timeout, Some(Duration::ZERO));
        assert_eq!(s.transport.shutdown_wait, Duration::ZERO);
        assert_eq!(s.transport.rpc_tc_request_timeout, Duration::from_secs(30));
        assert_eq!(s.security.ignore_urls, ["/a", "/b"]);
    }

    #[test]
    fn missing_values_do_not_override_and_empty_ones_mean_the_default() {
        // `mode:` (no value) and an empty variable leave file.conf's value in place; an explicit
        // empty string is a value, and for a number it means the built-in default.
        let (_dir, cli) = legacy_and_yml("seata:\n  store:\n    mode:\n  server:\n    service-port: \"\"\n");
        let s = load_ok(&cli, &env(&[("STORE_MODE", "")]));
        assert_eq!(s.store.mode, StoreMode::Db, "file.conf value kept");
        assert_eq!(s.service_port, 8091, "server.port + 1000");
    }
}
