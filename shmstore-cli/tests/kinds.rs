//! `get`, `set`, `inspect` and `watch` on a region whose fields have kinds (issue 15, items 3
//! and 4): issue 15's realistic `ServiceConfig` (text, flags, an optional value, a timestamp,
//! an enum, a list, a plain number), written by another process; the values round-trip through
//! `set` and `get`, `set` commits several fields as one update that a typed reader sees, and
//! each refusal says what to type instead.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use shmstore::value::Timestamp;
use shmstore::Shm;
use shmstore_tests::{LogLevel, ServiceConfig};

/// In a helper process: `config NAME valid|forged|in-place|readable` creates a
/// `ServiceConfig` region and exits, so that the region is written by another process.
#[test]
fn child_process_entry() {
    let Ok(action) = std::env::var(CHILD_ENV) else {
        return;
    };
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        ["config", name, how] => {
            let options = Shm::<ServiceConfig>::options();
            let (options, value) = match *how {
                "valid" => (options, ServiceConfig::example()),
                "forged" => (options, ServiceConfig::forged()),
                "in-place" => (options.in_place(true), ServiceConfig::example()),
                // Others may read it but not write it.
                "readable" => (options.mode(0o644), ServiceConfig::example()),
                other => panic!("config: {other}?"),
            };
            options.create(*name, value).unwrap();
        }
        // Dies holding the lock of an in-place region mid-write: the next locker poisons it.
        ["die-writing", name] => {
            let shm = Shm::<ServiceConfig>::options()
                .in_place(true)
                .open(*name)
                .unwrap();
            let mut config = shm.lock().unwrap();
            config.rate = -1.0;
            std::process::exit(0);
        }
        _ => child_action(),
    }
}

/// A `ServiceConfig` region written by another process (`how` as in [`child_process_entry`]).
fn config(tag: &str, how: &str) -> (String, Place) {
    let (name, place) = region(tag);
    run_child(&format!("config {name} {how}"));
    (name, place)
}

fn json(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", ran.what, ran.stdout))
}

/// The `field = value` lines `inspect` and `get` print for `ServiceConfig::example()`.
const EXAMPLE_LINES: &[&str] = &[
    "rate = 2.5",
    "updated_at = 2026-12-06T11:00:22.666698771Z",
    "request_limit = 500",
    "service_name = \"billing-api\"",
    "hostname = \"db-1.internal\"",
    "log_level = Info",
    "upstream_ports = [8080, 8081, 9090]",
    "tls = true",
    "maintenance = false",
];

#[test]
fn inspect_get_and_json_show_every_kind_as_values() {
    let (name, _cleanup) = config("kinds-show", "valid");

    let inspected = run(&["inspect", &name]);
    inspected.ok();
    let shown = inspected
        .stdout
        .split("\nvalue at version 0\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no value section:\n{}", inspected.stdout));
    let lines: Vec<&str> = shown.lines().map(str::trim).collect();
    assert_eq!(lines, EXAMPLE_LINES);

    let got = run(&["get", &name]);
    got.ok();
    assert_eq!(got.stdout.lines().collect::<Vec<_>>(), EXAMPLE_LINES);

    // Named fields: one value per line, text raw for the shell.
    let got = run(&[
        "get",
        &name,
        "service_name",
        "log_level",
        "tls",
        "request_limit",
        "updated_at",
        "upstream_ports",
        "rate",
    ]);
    got.ok();
    assert_eq!(
        got.stdout,
        "billing-api\nInfo\ntrue\n500\n2026-12-06T11:00:22.666698771Z\n[8080, 8081, 9090]\n2.5\n"
    );

    let expected = json!({
        "rate": 2.5,
        "updated_at": "2026-12-06T11:00:22.666698771Z",
        "request_limit": 500,
        "service_name": "billing-api",
        "hostname": "db-1.internal",
        "log_level": "Info",
        "upstream_ports": [8080, 8081, 9090],
        "tls": true,
        "maintenance": false,
    });
    let inspected = run(&["inspect", &name, "--json"]);
    inspected.ok();
    assert_eq!(json(&inspected)["values"], expected, "{}", inspected.stdout);
    let got = run(&["get", &name, "--json"]);
    got.ok();
    assert_eq!(json(&got), expected);
    let got = run(&["get", &name, "--json", "log_level", "request_limit"]);
    got.ok();
    assert_eq!(
        json(&got),
        json!({"log_level": "Info", "request_limit": 500})
    );
}

#[test]
fn set_round_trips_every_kind_in_one_commit_a_typed_reader_sees() {
    let (name, _cleanup) = config("kinds-set", "valid");
    let set = run(&[
        "set",
        &name,
        "service_name=billing api, v2",
        "hostname=db-2.internal",
        "log_level=Debug",
        "tls=false",
        "maintenance=true",
        "request_limit=none",
        "updated_at=2027-01-02T03:04:05.000000006Z",
        "upstream_ports=[443, 8443]",
        "rate=0.5",
    ]);
    set.ok();
    // One commit for all nine assignments.
    assert_eq!(set.stdout, format!("{name}: version 1\n"));

    // A typed reader sees every new value.
    let shm = Shm::<ServiceConfig>::open(&name).unwrap();
    assert_eq!(shm.version(), 1);
    let config = shm.read();
    assert_eq!(config.service_name, "billing api, v2");
    assert_eq!(config.hostname, "db-2.internal");
    assert_eq!(config.log_level.get(), Ok(LogLevel::Debug));
    assert!(!config.tls.get());
    assert!(config.maintenance.get());
    assert_eq!(config.request_limit.get(), None);
    assert_eq!(
        config.updated_at,
        Timestamp::from_unix_nanos(1_798_859_045_000_000_006)
    );
    assert_eq!(config.upstream_ports.as_slice(), Ok(&[443u16, 8443][..]));
    assert_eq!(config.rate, 0.5);

    let got = run(&["get", &name, "--json"]);
    got.ok();
    assert_eq!(
        json(&got),
        json!({
            "rate": 0.5,
            "updated_at": "2027-01-02T03:04:05.000000006Z",
            "request_limit": null,
            "service_name": "billing api, v2",
            "hostname": "db-2.internal",
            "log_level": "Debug",
            "upstream_ports": [443, 8443],
            "tls": false,
            "maintenance": true,
        })
    );

    // And back: an optional value given, a list emptied, text with quotes in a list-free field.
    run(&[
        "set",
        &name,
        "request_limit=7",
        "upstream_ports=[]",
        "hostname=\"q\"",
    ])
    .ok();
    let got = run(&["get", &name, "request_limit", "upstream_ports", "hostname"]);
    got.ok();
    assert_eq!(got.stdout, "7\n[]\n\"q\"\n");

    // A line break in text: escaped on its line by get, quoted by inspect, kept in JSON.
    run(&["set", &name, "service_name=a\nb\u{1b}"]).ok();
    let got = run(&["get", &name, "service_name"]);
    assert_eq!(got.stdout, "a\\u{a}b\\u{1b}\n");
    let inspected = run(&["inspect", &name]);
    assert!(
        inspected
            .stdout
            .contains("  service_name = \"a\\nb\\u{1b}\"\n"),
        "{}",
        inspected.stdout
    );
    let got = run(&["get", &name, "--json", "service_name"]);
    assert_eq!(json(&got)["service_name"], "a\nb\u{1b}");
}

#[test]
fn a_refused_assignment_writes_nothing_and_says_what_to_type() {
    let (name, _cleanup) = config("kinds-refused", "valid");
    let long_text = format!("service_name={}", "x".repeat(61));
    for (assignment, says) in [
        (
            "log_level=Loud",
            "field `log_level`: it takes one of Error, Warn, Info, Debug, not `Loud`",
        ),
        (long_text.as_str(), "60"),
        ("request_limit=4294967296", "u32"),
        ("tls=yes", "true"),
        ("nope=1", "no such field; the type has rate, updated_at"),
    ] {
        // The valid assignment before it is not written either.
        let ran = run(&["set", &name, "rate=9", assignment]);
        ran.expect_failure(&format!("shmstore: region `{name}`, "));
        assert!(ran.stderr.contains(says), "{assignment}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    }
    let text_too_long = run(&["set", &name, &format!("service_name={}", "x".repeat(61))]);
    assert!(
        text_too_long
            .stderr
            .contains("it holds text of at most 60 bytes, and this is 61 bytes: shorten it"),
        "{}",
        text_too_long.stderr
    );
    let out_of_range = run(&["set", &name, "request_limit=4294967296"]);
    assert!(
        out_of_range.stderr.contains("4294967296"),
        "{}",
        out_of_range.stderr
    );
    assert_eq!(Shm::<ServiceConfig>::open(&name).unwrap().version(), 0);
    assert_eq!(
        Shm::<ServiceConfig>::open(&name).unwrap().read(),
        ServiceConfig::example()
    );

    // Not FIELD=VALUE at all: a usage error.
    let ran = run(&["set", &name, "log_level"]);
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("`log_level` is not FIELD=VALUE"),
        "{}",
        ran.stderr
    );
}

#[test]
fn set_refuses_an_in_place_region_unless_told() {
    let (name, _cleanup) = config("kinds-in-place", "in-place");
    let ran = run(&["set", &name, "log_level=Warn"]);
    ran.expect_failure("shmstore: ");
    assert!(
        ran.stderr.contains("it is an in_place region")
            && ran.stderr.contains("`shmstore set --in-place`"),
        "{}",
        ran.stderr
    );
    run(&["set", "--in-place", &name, "log_level=Warn"]).ok();
    let got = run(&["get", &name, "log_level"]);
    assert_eq!(got.stdout, "Warn\n");
}

#[test]
fn set_is_refused_to_a_user_the_mode_does_not_let_write() {
    if !is_root() {
        eprintln!("skipped: changing uid needs root");
        return;
    }
    let (name, _cleanup) = config("kinds-readonly", "readable");
    let as_nobody = |args: &[&str]| {
        let what = format!("shmstore {} (as uid 65534)", args.join(" "));
        let child = shmstore()
            .args(args)
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Ran::from((
            what.clone(),
            wait_with_timeout(child, Duration::from_secs(30), &what),
        ))
    };
    // Reading is allowed by the mode.
    as_nobody(&["get", &name, "log_level"]).ok();
    // The mode refuses writing, and says so (with or without other owners allowed).
    for args in [
        vec!["set", name.as_str(), "log_level=Warn"],
        vec![
            "set",
            "--allow-other-owner",
            name.as_str(),
            "log_level=Warn",
        ],
    ] {
        let ran = as_nobody(&args);
        ran.expect_failure(&format!(
            "shmstore: permission denied for region `{name}`: "
        ));
        assert!(
            ran.stderr
                .contains("the region's mode does not grant this user access"),
            "{}",
            ran.stderr
        );
    }
    assert_eq!(Shm::<ServiceConfig>::open(&name).unwrap().version(), 0);
    // Writable by the mode, another user's region still needs --allow-other-owner.
    std::fs::set_permissions(
        std::path::Path::new(SHM_DIR).join(&name),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let ran = as_nobody(&["set", &name, "log_level=Warn"]);
    ran.expect_failure(&format!(
        "shmstore: permission denied for region `{name}`: "
    ));
    assert!(ran.stderr.contains("--allow-other-owner"), "{}", ran.stderr);
    as_nobody(&["set", "--allow-other-owner", &name, "log_level=Warn"]).ok();
    assert_eq!(Shm::<ServiceConfig>::open(&name).unwrap().version(), 1);
}

#[test]
fn watch_shows_kinds_and_filters_to_the_fields_named() {
    let (name, _cleanup) = config("kinds-watch", "valid");
    let shm = Shm::<ServiceConfig>::open(&name).unwrap();

    let watch = start_watch(&["watch", &name, "--count", "1"]);
    assert!(watch.first.starts_with("watching "), "{}", watch.first);
    let rest = watch.output_while(|| {
        let mut config = shm.lock().unwrap();
        config.service_name.set("billing-v2").unwrap();
        config.log_level.set(LogLevel::Warn);
        config.tls.set(false);
    });
    assert!(
        rest.contains("  service_name: \"billing-api\" -> \"billing-v2\"\n")
            && rest.contains("  log_level: Info -> Warn\n")
            && rest.contains("  tls: true -> false\n"),
        "{rest}"
    );

    // Filtered: commits that change other fields are not shown, nor counted.
    let watch = start_watch(&["watch", &name, "maintenance", "--count", "1"]);
    let flip = std::sync::atomic::AtomicU32::new(0);
    let rest = watch.output_while(|| {
        let n = flip.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut config = shm.lock().unwrap();
        config.rate += 1.0;
        if n == 3 {
            config.maintenance.set(true);
        }
    });
    assert!(rest.contains("  maintenance: false -> true\n"), "{rest}");
    assert!(!rest.contains("rate"), "{rest}");

    // A field that does not exist is refused at once, with the fields there are.
    let ran = run(&["watch", &name, "nope"]);
    ran.expect_failure("shmstore: ");
    assert!(ran.stderr.contains("no such field"), "{}", ran.stderr);
}

#[test]
fn a_forged_region_is_reported_by_inspect_get_and_watch_never_a_crash() {
    let (name, _cleanup) = config("kinds-forged", "forged");
    let too_long = "the stored text length 200 is above the capacity 60";
    let not_utf8 = "the stored text is not valid UTF-8";
    let list_too_long = "the stored list length 40 is above the capacity 16";

    let inspected = run(&["inspect", &name]);
    inspected.ok();
    for line in [
        format!("service_name = <error: {too_long}"),
        format!("hostname = <error: {not_utf8}"),
        "log_level = 99 (unknown variant)".to_string(),
        format!("upstream_ports = <error: {list_too_long}"),
        "tls = true".to_string(),
        "request_limit = 500".to_string(),
    ] {
        assert!(
            inspected.stdout.contains(&line),
            "{line}:\n{}",
            inspected.stdout
        );
    }

    let inspected = run(&["inspect", &name, "--json"]);
    inspected.ok();
    let values = &json(&inspected)["values"];
    assert!(
        values["service_name"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with(too_long)),
        "{values}"
    );
    assert!(
        values["hostname"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with(not_utf8)),
        "{values}"
    );
    assert_eq!(values["log_level"], json!({"unknown_variant": 99}));

    // get prints what it can, an empty line for what it cannot, and fails.
    let got = run(&["get", &name, "service_name", "log_level", "hostname", "tls"]);
    got.expect_code(1);
    assert_eq!(got.stdout, "\n99 (unknown variant)\n\ntrue\n");
    assert!(
        got.stderr.contains(&format!(
            "shmstore: `service_name` in `{name}` cannot be read: {too_long}"
        )) && got.stderr.contains(&format!(
            "shmstore: `hostname` in `{name}` cannot be read: {not_utf8}"
        )),
        "{}",
        got.stderr
    );
    let got = run(&["get", &name, "--json"]);
    got.expect_code(1);
    assert_eq!(json(&got)["log_level"], json!({"unknown_variant": 99}));

    // watch shows the forged values, and their repair.
    let shm = Shm::<ServiceConfig>::open(&name).unwrap();
    let watch = start_watch(&["watch", &name, "--count", "1"]);
    let rest = watch.output_while(|| {
        shm.lock().unwrap().service_name.set("fixed").unwrap();
    });
    assert!(
        rest.contains(&format!("  service_name: <error: {too_long}"))
            && rest.contains("-> \"fixed\"\n"),
        "{rest}"
    );
    // set repairs them.
    run(&[
        "set",
        &name,
        "hostname=db-3",
        "log_level=Error",
        "upstream_ports=[1]",
    ])
    .ok();
    run(&["get", &name]).ok();
}

#[test]
fn get_of_a_field_that_does_not_exist_lists_the_fields() {
    let (name, _cleanup) = config("kinds-nofield", "valid");
    let ran = run(&["get", &name, "servicename"]);
    ran.expect_failure(&format!("shmstore: region `{name}`, field `servicename`: "));
    assert!(
        ran.stderr
            .contains("no such field; the type has rate, updated_at, request_limit"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_plain_region_prints_as_before() {
    let (name, _cleanup) = region("kinds-plain");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let inspected = run(&["inspect", &name]);
    inspected.ok();
    for line in SAMPLE_LINES {
        assert!(inspected.stdout.contains(&format!("  {line}\n")), "{line}");
    }
    assert_eq!(
        json(&run(&["inspect", &name, "--json"]))["values"],
        Value::Null
    );
    let got = run(&["get", &name, "counter", "pos.x", "tag"]);
    got.ok();
    assert_eq!(got.stdout, "7\n1.5\n[97, 98, 99, 100]\n");
    run(&["set", &name, "counter=8", "tag=[1, 2, 3, 4]"]).ok();
    let shm = Shm::<Sample>::open(&name).unwrap();
    assert_eq!(shm.read().counter, 8);
    assert_eq!(shm.read().tag, [1, 2, 3, 4]);
}

#[test]
fn set_on_a_poisoned_region_commits_and_warns() {
    let (name, _cleanup) = config("kinds-poisoned", "in-place");
    run_child(&format!("die-writing {name}"));
    let ran = run(&["set", "--in-place", &name, "log_level=Warn"]);
    ran.ok();
    // Version 1 is the poisoning (the repair publishes the half-written value), 2 the commit.
    assert_eq!(ran.stdout, format!("{name}: version 2\n"));
    assert!(
        ran.stderr.starts_with(&format!(
            "shmstore: warning: `{name}` was poisoned before this commit"
        )) && ran.stderr.contains("Shm::clear_poison"),
        "{}",
        ran.stderr
    );
    let shm = Shm::<ServiceConfig>::options()
        .in_place(true)
        .open(&name)
        .unwrap();
    assert!(shm.is_poisoned(), "set does not clear the poison");
    assert_eq!(shm.read().log_level.get(), Ok(LogLevel::Warn));
}
