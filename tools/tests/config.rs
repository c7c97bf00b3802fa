//! The daemon's configuration file and identity file: good files parse into the expected
//! values; unknown keys, bad values and malformed identities are typed errors that name the key
//! or the file; a missing identity is created once, mode 0600, and kept.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{TempDir, run};
use phyla_tools::config::{self, ConfigError, DriverChoice, IdleChoice, ThreadingChoice};
use phyla_tools::identity::{self, IdentityError, Origin};

const GOOD: &str = r#"
name = "node-a"
identity = "ids/node-a.id"
bind = "127.0.0.1:7400"
shards = 2
driver = "poll"
idle = "spin"
threading = "dedicated"
run_dir = "run"
stats_interval_ms = 100
datagram_bytes = 9000

[[group]]
name = "market"
contacts = ["127.0.0.1:7500", "10.0.0.2:7400"]
expected_members = 8
overrides = { loss_timeout_ms = 9000, cache_capacity = 512, flow_window_bytes = 65536 }

[group.publish]
messages = 200000
message_bytes = 64
messages_per_sec = 5000

[[group]]
name = "chat"
"#;

fn parse(text: &str) -> Result<config::NodeConfig, ConfigError> {
    config::parse(text, Path::new("node.toml"), Path::new("/etc/phyla"))
}

#[test]
fn config_parses_every_key() {
    let c = parse(GOOD).expect("the good configuration parses");
    assert_eq!(c.name, "node-a");
    assert_eq!(c.identity, Path::new("/etc/phyla/ids/node-a.id"));
    assert_eq!(c.bind.to_string(), "127.0.0.1:7400");
    assert_eq!(c.shards, 2);
    assert_eq!(c.driver, DriverChoice::Poll);
    assert_eq!(c.idle, IdleChoice::Spin);
    assert_eq!(c.threading, ThreadingChoice::Dedicated);
    assert_eq!(c.run_dir.as_deref(), Some(Path::new("/etc/phyla/run")));
    assert_eq!(c.stats_interval.as_millis(), 100);
    assert_eq!(c.progress_interval.as_millis(), 1000);
    assert_eq!(c.datagram_bytes, Some(9000));
    assert_eq!(c.groups.len(), 2);
    let market = &c.groups[0];
    assert_eq!(market.name, "market");
    assert_eq!(market.contacts.len(), 2);
    assert_eq!(market.expected_members, 8);
    let p = market.publish.as_ref().expect("market publishes");
    assert_eq!((p.messages, p.message_bytes), (200_000, 64));
    assert_eq!(p.messages_per_sec, Some(5000.0));
    assert!(c.groups[1].publish.is_none());
    assert_eq!(c.groups[1].expected_members, 64);
    assert_eq!(c.group_config.loss_timeout.as_millis(), 9000);
    assert_eq!(c.group_config.cache_capacity, 512);
    // The flow window follows the smaller cache; its bytes are as given.
    assert_eq!(
        c.group_config.flow_window,
        Some(group_comm::FlowWindow {
            messages: 128,
            bytes: 65_536
        })
    );
}

#[test]
fn config_defaults_fill_everything_but_name_and_bind() {
    let c = parse("name = \"n\"\nbind = \"0.0.0.0:7400\"\n").expect("a minimal file parses");
    assert_eq!(c.identity, Path::new("/etc/phyla/n.id"));
    assert_eq!(
        (c.shards, c.driver, c.idle),
        (1, DriverChoice::Auto, IdleChoice::Park)
    );
    assert_eq!(c.threading, ThreadingChoice::Invoker);
    assert!(c.run_dir.is_none() && c.groups.is_empty());
    assert_eq!(c.stats_interval.as_millis(), 250);
    assert_eq!(
        c.datagram_bytes, None,
        "chosen by the engine from the bind address"
    );
}

#[test]
fn config_rejects_unknown_keys_by_name() {
    let cases = [
        (
            "name = \"n\"\nbind = \"127.0.0.1:1\"\nshard = 2\n",
            "shard",
            Some(3),
        ),
        (
            "name = \"n\"\nbind = \"127.0.0.1:1\"\n[[group]]\nname = \"g\"\ncontact = []\n",
            "group[0].contact",
            Some(5),
        ),
        (
            "name = \"n\"\nbind = \"127.0.0.1:1\"\n[[group]]\nname = \"g\"\n[group.publish]\n\
             messages = 1\nrate = 5\n",
            "group[0].publish.rate",
            Some(7),
        ),
    ];
    for (text, key, line) in cases {
        match parse(text) {
            Err(ConfigError::UnknownKey {
                key: k, line: l, ..
            }) => {
                assert_eq!((k.as_str(), l), (key, line), "in {text:?}");
            }
            other => panic!("{text:?}: expected an unknown key error, got {other:?}"),
        }
    }
}

#[test]
fn config_rejects_bad_values_by_key() {
    let base = "name = \"n\"\nbind = \"127.0.0.1:1\"\n";
    let cases = [
        (format!("{base}shards = \"two\"\n"), "shards"),
        (format!("{base}shards = 0\n"), "shards"),
        (format!("{base}driver = \"fast\"\n"), "driver"),
        (format!("{base}idle = 3\n"), "idle"),
        (format!("{base}datagram_bytes = 100\n"), "datagram_bytes"),
        (format!("{base}datagram_bytes = 65508\n"), "datagram_bytes"),
        ("name = \"n\"\nbind = \"localhost\"\n".to_owned(), "bind"),
        (
            "name = \"a/b\"\nbind = \"127.0.0.1:1\"\n".to_owned(),
            "name",
        ),
        (
            format!("{base}stats_interval_ms = -5\n"),
            "stats_interval_ms",
        ),
        (
            format!("{base}[[group]]\nname = \"g\"\ncontacts = [\"127.0.0.1\"]\n"),
            "group[0].contacts",
        ),
        (
            format!("{base}[[group]]\nname = \"g\"\ncontacts = [\"0.0.0.0:5\"]\n"),
            "group[0].contacts",
        ),
        (
            format!(
                "{base}[[group]]\nname = \"g\"\n[group.publish]\nmessages = 1\nmessage_bytes = 4\n"
            ),
            "group[0].publish.message_bytes",
        ),
        (
            format!("{base}[[group]]\nname = \"g\"\noverrides = {{ active_size = \"big\" }}\n"),
            "group[0].overrides.active_size",
        ),
        (
            format!("{base}[[group]]\nname = \"g\"\noverrides = {{ active_size = 1 }}\n"),
            "group[0].overrides",
        ),
        (
            format!(
                "{base}[[group]]\nname = \"g\"\noverrides = {{ cache_capacity = 5 }}\n\
                 [[group]]\nname = \"h\"\noverrides = {{ cache_capacity = 6 }}\n"
            ),
            "group[1].overrides",
        ),
        (
            format!("{base}[[group]]\nname = \"g\"\n[[group]]\nname = \"g\"\n"),
            "group[1].name",
        ),
    ];
    for (text, key) in cases {
        match parse(&text) {
            Err(ConfigError::BadValue { key: k, .. }) => assert_eq!(k, key, "in {text:?}"),
            other => panic!("{text:?}: expected a bad value of {key}, got {other:?}"),
        }
    }
    assert!(matches!(
        parse("bind = \"127.0.0.1:1\"\n"),
        Err(ConfigError::MissingKey { key, .. }) if key == "name"
    ));
    assert!(matches!(
        parse("name = \n"),
        Err(ConfigError::Syntax { line: 1, .. })
    ));
}

#[test]
fn config_errors_are_one_line_and_name_file_line_and_key() {
    let e = parse("name = \"n\"\nbind = \"127.0.0.1:1\"\nshards = \"two\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.starts_with("node.toml:3: `shards`: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn identity_missing_is_created_once_with_mode_0600() {
    let dir = TempDir::new("identity");
    let path = dir.join("sub/node.id");
    let (id, origin) = identity::load_or_create(&path).expect("created");
    assert_eq!(origin, Origin::Created);
    let mode = std::fs::metadata(&path)
        .expect("the file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).expect("readable");
    assert_eq!(text.trim(), identity::to_hex(&id));
    let (again, origin) = identity::load_or_create(&path).expect("loaded");
    assert_eq!((again, origin), (id, Origin::Loaded));
}

#[test]
fn identity_malformed_is_rejected_not_replaced() {
    let dir = TempDir::new("identity-bad");
    for (i, content) in [
        &b""[..],
        b"abc\n",
        b"zz00000000000000000000000000000000000000000000000000000000000000",
        &[0xff, 0xfe, 0x00][..],
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(&format!("bad{i}.id"));
        std::fs::write(&path, content).expect("writing the test file");
        match identity::load_or_create(&path) {
            Err(IdentityError::Malformed { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{content:?}: expected Malformed, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).expect("still there"),
            *content,
            "left untouched"
        );
    }
}

#[test]
fn node_check_reports_bad_config_on_one_line_and_usage_with_2() {
    let bin = env!("CARGO_BIN_EXE_phyla-node");
    let dir = TempDir::new("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"n\"\nbind = \"127.0.0.1:1\"\nbogus = 1\n").expect("write");
    let (status, _, err) = run(
        bin,
        &["--config", bad.to_str().unwrap_or_default(), "--check"],
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bogus") && err.contains(":3:"), "{err}");

    let good = dir.join("good.toml");
    std::fs::write(&good, "name = \"n\"\nbind = \"127.0.0.1:1\"\n").expect("write");
    let (status, out, _) = run(
        bin,
        &["--config", good.to_str().unwrap_or_default(), "--check"],
    );
    assert_eq!(status.code(), Some(0));
    assert!(out.contains("\"config\":\"ok\""), "{out}");
    assert!(!dir.join("n.id").exists(), "--check creates nothing");

    let malformed = dir.join("m.toml");
    std::fs::write(&malformed, "name = \"m\"\nbind = \"127.0.0.1:1\"\n").expect("write");
    std::fs::write(dir.join("m.id"), "not an id").expect("write");
    let (status, _, err) = run(bin, &["--config", malformed.to_str().unwrap_or_default()]);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("m.id") && err.contains("malformed"), "{err}");

    let (status, _, err) = run(bin, &["--frobnicate"]);
    assert_eq!(status.code(), Some(2), "{err}");
    let (status, _, _) = run(bin, &[]);
    assert_eq!(status.code(), Some(2));
    let (status, out, _) = run(bin, &["--help"]);
    assert_eq!(status.code(), Some(0));
    assert!(out.contains("--config"));
}
