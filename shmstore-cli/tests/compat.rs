//! `shmstore compat` (issue 16, item 5): a dry run of the compatibility check between a
//! region and another type, from another region or an `inspect --json` dump, with regions of
//! two releases of a config type (`shmstore_tests::config_versions`). Exit 0 when compatible,
//! 1 when not, naming each refused field.

mod common;

use common::*;
use serde_json::Value;
use shmstore::value::{EnumField, FixedStr};
use shmstore::Shm;
use shmstore_tests::config_versions::{ConfigFloatWorkers, ConfigV1, ConfigV2, LevelV1, LevelV2};

fn v1() -> ConfigV1 {
    ConfigV1 {
        workers: 4,
        timeout_ms: 500,
        service: FixedStr::new("billing").unwrap(),
        level: EnumField::new(LevelV1::Warn),
        _pad: [0; 3],
    }
}

fn v2() -> ConfigV2 {
    ConfigV2 {
        workers: 8,
        retries: 3,
        timeout_ms: 90_000,
        service: FixedStr::new("billing-eu-west").unwrap(),
        level: EnumField::new(LevelV2::Debug),
        _pad: [0; 3],
    }
}

/// The line for `path` in `compat`'s text output, its fields split on runs of spaces.
fn line<'a>(ran: &'a Ran, path: &str) -> &'a str {
    ran.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(path))
        .unwrap_or_else(|| panic!("no line for `{path}` in\n{}", ran.stdout))
}

fn verdict_of(ran: &Ran, path: &str) -> String {
    line(ran, path)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn a_newer_release_is_compatible_with_an_older_region_field_by_field() {
    let (old, _old_place) = region("compat-v1");
    let (new, _new_place) = region("compat-v2");
    let _v1 = Shm::<ConfigV1>::create(&old, v1()).unwrap();
    let _v2 = Shm::<ConfigV2>::create(&new, v2()).unwrap();

    let ran = run(&["compat", &old, "--with", &new]);
    ran.ok();
    assert!(
        ran.stdout.starts_with(&format!(
            "region `{old}` (type Config) with `{new}` (type Config): compatible\n"
        )),
        "{}",
        ran.stdout
    );
    for (path, verdict) in [
        ("workers", "same"),
        ("timeout_ms", "widened"),
        ("service", "widened"),
        ("level", "widened"),
        ("_pad", "same"),
        ("retries", "added"),
    ] {
        assert_eq!(verdict_of(&ran, path), verdict, "{}", ran.stdout);
    }
    assert!(
        line(&ran, "timeout_ms").contains("u32 -> u64"),
        "{}",
        ran.stdout
    );
    assert!(
        line(&ran, "level").contains("Debug = 3"),
        "the new variant is shown: {}",
        ran.stdout
    );
    assert!(line(&ran, "retries").contains("reads as its zero value"));

    // The other way round: release 1 cannot read what release 2's region holds.
    let back = run(&["compat", &new, "--with", &old]);
    back.expect_code(1);
    for (path, why) in [
        ("timeout_ms", "u64 in the region, u32 here: narrowing"),
        ("service", "a shorter capacity"),
        ("level", "`Debug` (3) is in the region but not here"),
    ] {
        assert_eq!(verdict_of(&back, path), "incompatible", "{}", back.stdout);
        assert!(line(&back, path).contains(why), "{}", back.stdout);
    }
    assert_eq!(verdict_of(&back, "retries"), "kept");
    assert!(
        back.stderr.starts_with(&format!(
            "shmstore: `{old}` cannot share `{new}`: `timeout_ms`, `service`, `level` \
             incompatible"
        )),
        "{}",
        back.stderr
    );
}

#[test]
fn a_field_that_changes_type_is_refused_by_name() {
    let (old, _old_place) = region("compat-float-v1");
    let (bad, _bad_place) = region("compat-float");
    let _v1 = Shm::<ConfigV1>::create(&old, v1()).unwrap();
    let _bad = Shm::<ConfigFloatWorkers>::create(&bad, shmstore::zeroed()).unwrap();

    let ran = run(&["compat", &old, "--with", &bad]);
    ran.expect_failure(&format!(
        "shmstore: `{bad}` cannot share `{old}`: `workers` incompatible"
    ));
    assert!(ran.stdout.contains("): incompatible\n"), "{}", ran.stdout);
    assert_eq!(verdict_of(&ran, "workers"), "incompatible");
    assert!(
        line(&ran, "workers").contains("u32 in the region, f32 here: an integer and a float"),
        "{}",
        ran.stdout
    );
    // Only that field.
    for path in ["timeout_ms", "service", "level", "_pad"] {
        assert_eq!(verdict_of(&ran, path), "same", "{}", ran.stdout);
    }

    let json = run(&["compat", &old, "--with", &bad, "--json"]);
    json.expect_code(1);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["verdict"], "incompatible");
    assert_eq!(v["compatible"], false);
    let workers = &v["fields"][0];
    assert_eq!(workers["path"], "workers");
    assert_eq!(workers["verdict"], "incompatible");
    assert_eq!(workers["region"], "u32");
    assert_eq!(workers["other"], "f32");
    assert!(workers["reason"]
        .as_str()
        .unwrap()
        .contains("an integer and a float"));
}

#[test]
fn a_dump_of_inspect_json_stands_for_the_other_type() {
    let (old, _old_place) = region("compat-dump-v1");
    let (new, _new_place) = region("compat-dump-v2");
    let _v1 = Shm::<ConfigV1>::create(&old, v1()).unwrap();
    let v2_region = Shm::<ConfigV2>::create(&new, v2()).unwrap();
    let dir = TempDir::new("compat-dump");
    let dump = dir.path().join("v2.json");
    let inspected = run(&["inspect", &new, "--json"]);
    inspected.ok();
    std::fs::write(&dump, &inspected.stdout).unwrap();
    // The release 2 region may be gone by the time of the dry run.
    drop(v2_region);
    shmstore::unlink(&new).unwrap();

    let dump_text = dump.to_str().unwrap();
    let ran = run(&["compat", &old, "--descriptor", dump_text, "--json"]);
    ran.ok();
    let v: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(v["verdict"], "compatible");
    assert_eq!(v["other_type"], "Config");
    let verdicts: Vec<(String, String)> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("workers", "same"),
        ("timeout_ms", "widened"),
        ("service", "widened"),
        ("level", "widened"),
        ("_pad", "same"),
        ("retries", "added"),
    ];
    assert_eq!(
        verdicts,
        expected.map(|(p, v)| (p.to_string(), v.to_string()))
    );
    assert_eq!(v["fields"][1]["from"], "u32");
    assert_eq!(v["fields"][1]["to"], "u64");

    // The region against its own dump: identical.
    let own = dir.path().join("v1.json");
    std::fs::write(&own, run(&["inspect", &old, "--json"]).stdout).unwrap();
    let same = run(&["compat", &old, "--descriptor", own.to_str().unwrap()]);
    same.ok();
    assert!(same.stdout.contains("): identical\n"), "{}", same.stdout);

    // A file that is not a dump, and a dump whose descriptor was tampered with.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"name\": \"x\"}").unwrap();
    run(&["compat", &old, "--descriptor", junk.to_str().unwrap()])
        .expect_failure("shmstore: `")
        .stderr
        .contains("has no `descriptor`")
        .then_some(())
        .expect("names the missing descriptor");
    let mut forged: Value = serde_json::from_str(&inspected.stdout).unwrap();
    let bytes = forged["descriptor"]["bytes"].as_str().unwrap().to_string();
    forged["descriptor"]["bytes"] = Value::from(&bytes[..bytes.len() - 2]);
    std::fs::write(&junk, forged.to_string()).unwrap();
    let ran = run(&["compat", &old, "--descriptor", junk.to_str().unwrap()]);
    ran.expect_code(1);
    assert!(ran.stderr.contains("truncated"), "{}", ran.stderr);
}

#[test]
fn one_of_with_and_descriptor_is_required() {
    let (old, _place) = region("compat-usage");
    let _v1 = Shm::<ConfigV1>::create(&old, v1()).unwrap();
    run(&["compat", &old]).expect_code(2);
    run(&["compat", &old, "--with", "a", "--descriptor", "b"]).expect_code(2);
}
