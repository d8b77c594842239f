//! The command against regions a hostile peer planted (issue 13, points 1, 10): a descriptor
//! whose names are C code, whose paths nest 20 000 deep, whose dimensions are 2^63 or
//! overflow, and names with control characters. Each region is forged byte for byte
//! (`shmstore_cli::fuzzing::forged_region`: a valid header around the forged descriptor).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use shmstore_cli::fuzzing::{
    check_c_header, encode_descriptor, encode_kinds, forged_region, forged_region_of_version,
    publish_version, ForgedField,
};

/// Primitive code of `u32` (FORMAT.md).
const U32: u32 = 3;
/// Primitive code of `u8`.
const U8: u32 = 1;

/// Plants a forged value region of `size` bytes (align 4) named `name` in `/dev/shm`.
fn plant(name: &str, descriptor: &[u8], size: usize) {
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    std::fs::write(
        Path::new(SHM_DIR).join(name),
        forged_region(descriptor, &payload, 4),
    )
    .unwrap();
}

#[test]
fn a_type_name_that_is_c_code_stays_inside_the_comment_and_the_string() {
    let (name, _cleanup) = region("forged-typename");
    // Closes the header's comment and its string literal, then defines a function.
    let evil = "Evil */ int pwned(void) { return 1; } /*\n\" int also_pwned; \"\u{1b}[2J";
    plant(&name, &encode_descriptor(evil, &[("x", U32, 0, &[])]), 4);
    let ran = run(&["header", &name]);
    ran.ok();
    check_c_header(&ran.stdout).unwrap_or_else(|why| panic!("{why}:\n{}", ran.stdout));
    let dir = TempDir::new("forged-typename");
    syntax_check(dir.path(), &ran.stdout, INCLUDES_REGION_H, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", ran.stdout));
    assert!(
        ran.stdout.contains(concat!(
            r#"#define SHMSTORE_TYPE_NAME "Evil */ int pwned(void) { return 1; } "#,
            r#"/*\012\" int also_pwned; \"\033[2J""#
        )),
        "{}",
        ran.stdout
    );
}

#[test]
fn field_paths_that_are_not_identifiers_are_refused() {
    for (tag, path) in [
        ("string", "x\"); int pwned(void) { return 1; } //"),
        ("newline", "x\n#include \"/etc/shadow\"\n"),
        ("unicode", "gr\u{f6}\u{df}e"),
        ("empty", "a..b"),
    ] {
        let (name, _cleanup) = region(&format!("forged-path-{tag}"));
        plant(
            &name,
            &encode_descriptor("Evil", &[("a", U32, 0, &[]), (path, U32, 4, &[])]),
            8,
        );
        let ran = run(&["header", &name]);
        ran.expect_failure("shmstore: cannot write a C header for ");
        assert!(
            ran.stderr.contains("is not a C identifier"),
            "{}",
            ran.stderr
        );
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
        assert!(
            !ran.stderr.trim_end().contains('\n'),
            "a raw line break: {}",
            ran.stderr
        );
    }
}

#[test]
fn a_path_twenty_thousand_levels_deep_is_refused_without_a_stack_overflow() {
    let (name, _cleanup) = region("forged-deep");
    let deep = vec!["a"; 20_000].join(".");
    plant(
        &name,
        &encode_descriptor("Deep", &[(&deep, U32, 0, &[])]),
        4,
    );
    let ran = run(&["header", &name]);
    ran.expect_failure("shmstore: cannot write a C header for ");
    assert!(
        ran.stderr.contains("nested 19999 structs deep"),
        "{}",
        ran.stderr
    );
    // inspect shows it (the path is long, but nothing recurses over it).
    run(&["inspect", &name]).ok();
}

#[test]
fn dimensions_that_overflow_are_refused_not_a_panic() {
    let (name, _cleanup) = region("forged-overflow");
    // An array of structs of 2^40 elements of 2^40 bytes: their product overflows u64.
    let huge: &[(u64, u64)] = &[(1 << 40, 1 << 40)];
    plant(
        &name,
        &encode_descriptor("Big", &[("a[].x", U32, 0, huge)]),
        4,
    );
    let ran = run(&["header", &name]);
    ran.expect_failure("shmstore: cannot write a C header for ");
    assert!(ran.stderr.contains("does not lie inside"), "{}", ran.stderr);
    run(&["inspect", &name]).ok();
}

#[test]
fn watch_survives_a_dimension_of_two_to_the_sixty_third() {
    let (name, _cleanup) = region("forged-watch");
    let endless: &[(u64, u64)] = &[(1 << 63, 0)];
    plant(
        &name,
        &encode_descriptor("Endless", &[("x", U8, 0, endless)]),
        64,
    );
    let mut child = shmstore()
        .args(["watch", &name, "--count", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for its first line, then publish a new version with other bytes.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("watching "), "{first}");
    let path = format!("{SHM_DIR}/{name}");
    publish_version(&path, 1).unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30), "shmstore watch");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.starts_with("version 1\n"), "{rest}");
    // `inspect` shows at most one element per byte of the value.
    let ran = run(&["inspect", &name, "--max-elements", "1000000000"]);
    ran.ok();
    assert!(ran.stdout.contains("more)]"), "{}", ran.stdout);
}

#[test]
fn control_characters_in_names_are_escaped_in_every_output() {
    let (name, _cleanup) = region("forged-control");
    let type_name = "T\u{1b}]0;owned\u{7}\u{9b}\u{202e}";
    let field = "x\u{1b}[31m";
    plant(
        &name,
        &encode_descriptor(type_name, &[(field, U32, 0, &[])]),
        4,
    );
    let raw = |text: &str| {
        text.chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}'))
    };
    for args in [
        vec!["inspect", name.as_str()],
        vec!["inspect", name.as_str(), "--json"],
        vec![
            "watch",
            name.as_str(),
            "--count",
            "1",
            "--max-elements",
            "x",
        ],
    ] {
        let ran = run(&args);
        assert!(!raw(&ran.stdout), "{args:?}: {:?}", ran.stdout);
        assert!(!raw(&ran.stderr), "{args:?}: {:?}", ran.stderr);
    }
    let ran = run(&["inspect", &name]);
    assert!(
        ran.stdout.contains(r"T\u{1b}]0;owned\u{7}\u{9b}\u{202e}"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains(r"x\u{1b}[31m = "), "{}", ran.stdout);
    // JSON keeps the data: the escapes are JSON's.
    let ran = run(&["inspect", &name, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(json["type"], type_name);
    assert_eq!(json["fields"][0]["path"], field);
    // rm says what it removed, and what it could not find.
    let ran = run(&["rm", &name, "does-not-exist-\u{1b}"]);
    ran.expect_code(1);
    assert!(
        ran.stdout.contains(r"(value T\u{1b}]0;owned"),
        "{}",
        ran.stdout
    );
    assert!(!raw(&ran.stdout), "{:?}", ran.stdout);
    assert!(!raw(&ran.stderr), "{:?}", ran.stderr);

    // A file path with a line break, in an error message.
    let dir = TempDir::new("forged-control");
    let path = dir.path().join("no\nsuch\u{1b}[2J.shm");
    let ran = run(&["inspect", path.to_str().unwrap()]);
    ran.expect_code(1);
    assert!(!raw(&ran.stderr), "{:?}", ran.stderr);
    assert!(
        ran.stderr.contains(r"no\u{a}such\u{1b}[2J.shm"),
        "{}",
        ran.stderr
    );
    // The library's own message escapes them (the command's last net is not needed).
    let error = shmstore::inspect::Inspector::open(shmstore::Location::File(path))
        .err()
        .unwrap()
        .to_string();
    assert!(!raw(&error), "{error:?}");
    assert!(error.contains(r"no\u{a}such\u{1b}[2J.shm"), "{error}");
}

#[test]
fn list_escapes_names_and_type_names() {
    let _whole = whole_shm_lock();
    let name = format!("shmstore-test-cli-list\u{1b}[2J-{}", std::process::id());
    let _name = Place::adopt_name(&name);
    plant(
        &name,
        &encode_descriptor("T\u{1b}[31m", &[("x", U32, 0, &[])]),
        4,
    );
    for args in [vec!["list"], vec!["list", "--json"]] {
        let ran = run(&args);
        ran.ok();
        assert!(
            !ran.stdout.chars().any(|c| c != '\n' && c.is_control()),
            "{args:?}: {:?}",
            ran.stdout
        );
    }
    let ran = run(&["list"]);
    assert!(
        ran.stdout.contains(r"shmstore-test-cli-list\u{1b}[2J-"),
        "{}",
        ran.stdout
    );
}

#[test]
fn two_hundred_thousand_fields_take_linear_work_not_quadratic() {
    let (name, _cleanup) = region("forged-many");
    // One byte each, every one at the top level under its own name: the struct tree looked
    // each name up among all the members before it (2 × 10^10 comparisons).
    const FIELDS: usize = 200_000;
    let names: Vec<String> = (0..FIELDS).map(|i| format!("f{i}")).collect();
    let fields: Vec<ForgedField<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), U8, i as u64, &[][..]))
        .collect();
    plant(&name, &encode_descriptor("Many", &fields), FIELDS);
    let ran = run(&["header", &name]);
    ran.ok();
    assert!(ran
        .stdout
        .contains("    uint8_t f199999; /* offset 199999 */"));
    run(&["inspect", &name]).ok();
    // Values by kind are not decoded from so many fields: the library's decoding is
    // quadratic in them (`get` ran for hours).
    for args in [
        vec!["get", name.as_str()],
        vec!["get", name.as_str(), "f199999"],
        vec!["set", name.as_str(), "f0=1"],
        vec!["watch", name.as_str(), "f0"],
    ] {
        run(&args).expect_failure(&format!(
            "shmstore: `{name}`: its descriptor has 200000 fields (at most 4096"
        ));
    }
}

#[test]
fn four_thousand_fields_are_decoded_by_kind_quickly() {
    let (name, _cleanup) = region("forged-4096");
    let names: Vec<String> = (0..4096).map(|i| format!("f{i}")).collect();
    let fields: Vec<ForgedField<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), U8, i as u64, &[][..]))
        .collect();
    plant(&name, &encode_descriptor("Many", &fields), 4096);
    let got = run(&["get", &name]);
    got.ok();
    assert!(got.stdout.ends_with("f4095 = 255\n"), "{}", got.stdout);
}

#[test]
fn get_set_and_watch_refuse_a_path_twenty_thousand_levels_deep_without_a_stack_overflow() {
    // Decoding values by kind walks the nesting recursively: without a bound, `get` on this
    // region overflowed the stack (SIGABRT).
    let (name, _cleanup) = region("forged-deep-get");
    let deep = vec!["a"; 20_000].join(".");
    plant(
        &name,
        &encode_descriptor("Deep", &[(&deep, U32, 0, &[])]),
        4,
    );
    for args in [
        vec!["get", name.as_str()],
        vec!["get", name.as_str(), "a"],
        vec!["set", name.as_str(), "a=1"],
        vec!["watch", name.as_str(), "a"],
    ] {
        let ran = run(&args);
        ran.expect_failure(&format!(
            "shmstore: `{name}`: its descriptor nests a field 19999 levels deep"
        ));
    }
    run(&["inspect", &name, "--json"]).ok();
}

#[test]
fn a_format_version_2_region_nested_too_deep_is_shown_by_primitive_fields() {
    let (name, _cleanup) = region("forged-deep-kinds");
    let deep = vec!["a"; 20_000].join(".");
    let mut descriptor = encode_descriptor("Deep", &[("f.value", U8, 0, &[]), (&deep, U8, 1, &[])]);
    descriptor.extend(encode_kinds(&[("f", 2, 0, "", &[])]));
    std::fs::write(
        Path::new(SHM_DIR).join(&name),
        forged_region_of_version(&descriptor, &[1, 2, 3, 4], 4, 2),
    )
    .unwrap();
    let ran = run(&["inspect", &name]);
    ran.ok();
    assert!(ran.stdout.contains("  f.value = 1\n"), "{}", ran.stdout);
    run(&["get", &name]).expect_failure(&format!("shmstore: `{name}`: its descriptor nests"));
}

#[test]
fn a_forged_kinds_table_is_decoded_by_kind() {
    // A flag, an enum with a control character in a variant's name, and text: shown by kind,
    // escaped for the terminal.
    let (name, _cleanup) = region("forged-kinds");
    let mut descriptor = encode_descriptor(
        "Forged",
        &[
            ("f.value", U8, 0, &[]),
            ("e.raw", U8, 1, &[]),
            ("t.len", U8, 4, &[(4, 1)]),
            ("t.bytes", U8, 8, &[(4, 1)]),
        ],
    );
    descriptor.extend(encode_kinds(&[
        ("f", 2, 0, "", &[]),
        ("e", 5, 0, "Level", &[("Lo\u{1b}[2J", 0), ("Hi", 1)]),
        ("t", 1, 4, "", &[]),
    ]));
    let mut payload = vec![7u8, 0, 0, 0];
    payload.extend(3u32.to_ne_bytes());
    payload.extend(*b"ab\xffd");
    std::fs::write(
        Path::new(SHM_DIR).join(&name),
        forged_region_of_version(&descriptor, &payload, 4, 2),
    )
    .unwrap();
    let ran = run(&["inspect", &name]);
    ran.ok();
    assert!(ran.stdout.contains("  f = true\n"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("  e = Lo\\u{1b}[2J\n"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("  t = <error: the stored text is not valid UTF-8"),
        "{}",
        ran.stdout
    );
    let got = run(&["get", &name, "e", "f", "t"]);
    got.expect_code(1);
    assert_eq!(got.stdout, "Lo\\u{1b}[2J\ntrue\n\n");
    // The header: accessors for the flag and the text, no C enum for a variant name that is
    // not an identifier (its raw getter stays).
    let ran = run(&["header", &name]);
    ran.ok();
    check_c_header(&ran.stdout).unwrap_or_else(|why| panic!("{why}:\n{}", ran.stdout));
    assert!(
        !ran.stdout.contains("enum shmstore_Level"),
        "{}",
        ran.stdout
    );
    for accessor in ["shmstore_flag_f(", "shmstore_text_t(", "shmstore_enum_e("] {
        assert!(ran.stdout.contains(accessor), "{accessor}:\n{}", ran.stdout);
    }
    let dir = TempDir::new("forged-kinds");
    syntax_check(dir.path(), &ran.stdout, INCLUDES_REGION_H, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", ran.stdout));
}
