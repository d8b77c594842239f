//! `shmstore inspect` shows the layout a region holds and which fields each version that
//! shaped it knows (issue 16, point 5): the versions table a migration writes (`FORMAT.md`,
//! "Versions table"), forged byte for byte here (`shmstore_cli::fuzzing`), a region without
//! one (its stored type is its one version), a table that does not decode (shown as
//! unreadable, everything else still shown) and header words that misplace it (refused).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use shmstore::Shm;
use shmstore_cli::fuzzing::{
    encode_descriptor, encode_versions, forged_region_with_versions, ForgedField,
};

/// Primitive code of `u32` (FORMAT.md).
const U32: u32 = 3;
/// The fingerprints the forged versions claim; the region holds the second.
const V1_FINGERPRINT: u64 = 0x1111;
const V2_FINGERPRINT: u64 = 0x2222;
/// Where the header's fingerprint and versions table words are (FORMAT.md, "Header").
const FINGERPRINT_AT: usize = 24;
const VERSIONS_OFFSET_AT: usize = 176;

const V1_FIELDS: &[ForgedField<'static>] = &[("workers", U32, 0, &[])];
const V2_FIELDS: &[ForgedField<'static>] = &[("workers", U32, 0, &[]), ("timeout_ms", U32, 4, &[])];

/// The bytes of a region that holds `Config { workers: u32, timeout_ms: u32 }` (fingerprint
/// [`V2_FINGERPRINT`], value 4 and 500) with `versions` as its versions table.
fn config_region(versions: &[u8]) -> Vec<u8> {
    let payload: Vec<u8> = [4u32, 500].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let descriptor = encode_descriptor("Config", V2_FIELDS);
    let mut bytes = forged_region_with_versions(&descriptor, versions, &payload, 4, 1);
    bytes[FINGERPRINT_AT..FINGERPRINT_AT + 8].copy_from_slice(&V2_FINGERPRINT.to_ne_bytes());
    bytes
}

/// The table a migration from `Config { workers }` to the held layout writes.
fn two_versions() -> Vec<u8> {
    let v1 = encode_descriptor("Config", V1_FIELDS);
    let v2 = encode_descriptor("Config", V2_FIELDS);
    encode_versions(&[(V1_FINGERPRINT, 1, &v1), (V2_FINGERPRINT, 1, &v2)])
}

fn plant(name: &str, bytes: &[u8]) {
    std::fs::write(Path::new(SHM_DIR).join(name), bytes).unwrap();
}

/// Whether `text` has a line whose words are `words` (the tables pad with spaces).
fn has_words(text: &str, words: &[&str]) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().eq(words.iter().copied()))
}

fn inspect_json(name: &str) -> Value {
    let ran = run(&["inspect", "--json", name]);
    ran.ok();
    serde_json::from_str(&ran.stdout).unwrap()
}

#[test]
fn shows_each_version_and_which_versions_know_each_field() {
    let (name, _cleanup) = region("versions-two");
    let table = two_versions();
    plant(&name, &config_region(&table));

    let ran = run(&["inspect", &name]);
    ran.ok();
    let out = &ran.stdout;
    for line in [
        "versions",
        "  holds Config (fingerprint 0x0000000000002222)",
        "  #1 Config (fingerprint 0x0000000000001111): workers",
        "  #2 Config (fingerprint 0x0000000000002222, newest, held): workers, timeout_ms",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in\n{out}");
    }
    assert!(has_words(out, &["field", "known", "by"]), "{out}");
    assert!(has_words(out, &["workers", "#1", "#2"]), "{out}");
    assert!(has_words(out, &["timeout_ms", "#2"]), "{out}");
    // Everything else is shown as before: the value, the header with the table's place.
    assert!(has_words(out, &["workers", "=", "4"]), "{out}");
    assert!(has_words(out, &["timeout_ms", "=", "500"]), "{out}");
    // Right after the 71-byte descriptor (256 + 71), aligned to 8.
    assert!(has_words(out, &["versions_offset", "328"]), "{out}");
    assert!(
        has_words(out, &["versions_len", &table.len().to_string()]),
        "{out}"
    );

    let dump = inspect_json(&name);
    assert_eq!(
        dump["versions"],
        json!([
            {
                "number": 1,
                "type": "Config",
                "fingerprint": "0x0000000000001111",
                "fields": ["workers"],
                "newest": false,
                "held": false,
            },
            {
                "number": 2,
                "type": "Config",
                "fingerprint": "0x0000000000002222",
                "fields": ["workers", "timeout_ms"],
                "newest": true,
                "held": true,
            },
        ])
    );
    assert_eq!(dump["versions_error"], Value::Null);
    assert_eq!(dump["fields"][0]["known_by"], json!([1, 2]));
    assert_eq!(dump["fields"][1]["known_by"], json!([2]));
    assert_eq!(dump["fields"][1]["value"], json!(500));
    assert_eq!(dump["header"]["versions_offset"], json!(328));
}

#[test]
fn a_region_without_a_table_has_its_stored_type_as_its_one_version() {
    let (name, _cleanup) = region("versions-none");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let ran = run(&["inspect", &name]);
    ran.ok();
    let out = &ran.stdout;
    let version = out
        .lines()
        .find(|l| l.starts_with("  #1 Sample ("))
        .unwrap_or_else(|| panic!("no version line in\n{out}"));
    assert!(version.contains(", newest, held): counter, "), "{version}");
    assert!(!out.contains("  #2 "), "{out}");
    assert!(has_words(out, &["versions_offset", "0"]), "{out}");

    let dump = inspect_json(&name);
    let versions = dump["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["type"], "Sample");
    assert_eq!(versions[0]["held"], true);
    assert_eq!(versions[0]["fingerprint"], dump["header"]["fingerprint"]);
    let fields = dump["fields"].as_array().unwrap();
    assert!(!fields.is_empty());
    for field in fields {
        assert_eq!(field["known_by"], json!([1]), "{field}");
        assert!(
            has_words(out, &[field["path"].as_str().unwrap(), "#1"]),
            "{out}"
        );
    }
}

#[test]
fn a_forged_table_is_unreadable_and_everything_else_still_shows() {
    let v1 = encode_descriptor("Config", V1_FIELDS);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("count", vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4], "claims"),
        (
            "descriptor",
            encode_versions(&[(V1_FINGERPRINT, 1, &v1[..5])]),
            "version #1: its descriptor is truncated",
        ),
        (
            "format",
            encode_versions(&[(V1_FINGERPRINT, 7, &v1)]),
            "format version 7",
        ),
    ];
    for (tag, table, why) in cases {
        let (name, _cleanup) = region(&format!("versions-forged-{tag}"));
        plant(&name, &config_region(&table));
        let ran = run(&["inspect", &name]);
        ran.ok();
        let out = &ran.stdout;
        let unreadable = out
            .lines()
            .find(|l| l.starts_with("  unreadable: its versions table is unreadable: "))
            .unwrap_or_else(|| panic!("{tag}: no unreadable line in\n{out}"));
        assert!(unreadable.contains(why), "{tag}: {unreadable}");
        assert!(has_words(out, &["timeout_ms", "=", "500"]), "{tag}: {out}");
        assert!(
            out.lines()
                .any(|l| l == "  holds Config (fingerprint 0x0000000000002222)"),
            "{tag}: {out}"
        );

        let dump = inspect_json(&name);
        assert_eq!(dump["versions"], Value::Null, "{tag}");
        assert!(
            dump["versions_error"].as_str().unwrap().contains(why),
            "{tag}: {}",
            dump["versions_error"]
        );
        assert_eq!(dump["fields"][1]["known_by"], Value::Null, "{tag}");
        assert_eq!(dump["fields"][1]["value"], json!(500), "{tag}");
    }
}

#[test]
fn header_words_that_misplace_the_table_are_refused_as_corrupt() {
    let table = two_versions();
    let good = config_region(&table);
    let offset = u64::from_ne_bytes(
        good[VERSIONS_OFFSET_AT..VERSIONS_OFFSET_AT + 8]
            .try_into()
            .unwrap(),
    );
    for (tag, bad_offset, bad_len) in [
        ("shifted", offset + 8, table.len() as u64),
        ("no-length", offset, 0),
        ("no-offset", 0, table.len() as u64),
        ("huge", offset, u64::MAX),
    ] {
        let (name, _cleanup) = region(&format!("versions-misplaced-{tag}"));
        let mut bytes = good.clone();
        bytes[VERSIONS_OFFSET_AT..VERSIONS_OFFSET_AT + 8]
            .copy_from_slice(&bad_offset.to_ne_bytes());
        bytes[VERSIONS_OFFSET_AT + 8..VERSIONS_OFFSET_AT + 16]
            .copy_from_slice(&bad_len.to_ne_bytes());
        plant(&name, &bytes);
        let ran = run(&["inspect", &name]);
        ran.expect_code(1);
        assert!(
            ran.stderr.contains("versions table"),
            "{tag}: {}",
            ran.stderr
        );
    }
}

/// The Python example reads a region with a versions table as `inspect` shows it: it finds
/// the payload after the table and prints the same versions block.
#[test]
fn the_python_example_shows_the_versions_like_inspect() {
    if Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: python3 is not installed; skipping the Python versions test");
        return;
    }
    let (name, _cleanup) = region("versions-python");
    plant(&name, &config_region(&two_versions()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/read_region.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(&name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30), "read_region.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_region.py failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inspect = run(&["inspect", &name]);
    inspect.ok();
    // "creator" says whether the planting process is alive: the same for both.
    assert_eq!(stdout, inspect.stdout);
    assert!(stdout.contains("  #2 Config (fingerprint 0x0000000000002222, newest, held)"));
}

/// A C program built from `shmstore header` of a migrated region finds its payload after the
/// versions table, and refuses the region when the table's header words are misplaced.
#[test]
fn a_c_program_opens_a_region_with_a_versions_table() {
    let (name, _cleanup) = region("versions-c");
    let good = config_region(&two_versions());
    plant(&name, &good);
    let dir = TempDir::new("versions-c");
    let header = dir.path().join("region.h");
    run(&["header", &name, "-o", header.to_str().unwrap()]).ok();
    let program = compile_c(
        &c_dir().join("open_and_check.c"),
        dir.path(),
        &dir.path().join("open_and_check"),
    )
    .unwrap_or_else(|errors| panic!("open_and_check.c does not compile:\n{errors}"));

    let opened = Command::new(&program).arg(&name).output().unwrap();
    assert!(
        opened.status.success(),
        "open_and_check failed: {}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&opened.stdout),
        "value of Config at version 0\n"
    );

    let mut shifted = good;
    let offset = u64::from_ne_bytes(
        shifted[VERSIONS_OFFSET_AT..VERSIONS_OFFSET_AT + 8]
            .try_into()
            .unwrap(),
    );
    shifted[VERSIONS_OFFSET_AT..VERSIONS_OFFSET_AT + 8]
        .copy_from_slice(&(offset + 8).to_ne_bytes());
    plant(&name, &shifted);
    let refused = Command::new(&program).arg(&name).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("corrupt"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
