//! Every `Error` variant, provoked for real, and what its message tells the user.
//! (`Error::Timeout` is provoked in `crash.rs`, against a live creator busy in `init`.)

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use shmstore::{Error, Shm};
use shmstore_tests::{
    assert_mentions, exists, helper, is_root, noise, region, shm_path, unique_name, Cleanup,
    Counter, Limits, Pair,
};

#[test]
fn invalid_names_are_refused_before_any_system_call() {
    let pid = std::process::id();
    let space = format!("shmstore-test-a b-{pid}");
    let nul = format!("shmstore-test-nul\0{pid}");
    let escape = format!("../shmstore-test-escape-{pid}");
    let mut long = format!("shmstore-test-long-{pid}-");
    while long.len() < 201 {
        long.push('x');
    }
    // Objects exist under the names a file can have: a refusal that came after looking would
    // report them (Incomplete), and a create would collide with them.
    let mut cleanup = Cleanup::new(&space);
    cleanup.add(&long);
    fs::write(shm_path(&space), b"").unwrap();
    fs::write(shm_path(&long), b"").unwrap();

    let names: [&str; 9] = ["", "a/b", "../x", &escape, ".", "..", &nul, &space, &long];
    for name in names {
        let check = |what: &str, r: Result<(), Error>| match r {
            Err(ref e @ Error::InvalidName { name: ref n, .. }) => {
                assert_eq!(n, name, "{what}");
                assert_mentions(e, &["1 to 200", "A-Z a-z 0-9 . _ -"]);
            }
            other => panic!("{what}({name:?}) gave {other:?}"),
        };
        check("validate_name", shmstore::validate_name(name));
        check("create", Shm::create(name, Counter::at(1)).map(drop));
        check("open", Shm::<Counter>::open(name).map(drop));
        check(
            "open_or_create",
            Shm::<Counter>::open_or_create(name, || panic!("init ran for {name:?}")).map(drop),
        );
        check(
            "options().in_place(true).create",
            Shm::<Counter>::options()
                .in_place(true)
                .unlink_on_drop(true)
                .create(name, Counter::at(1))
                .map(drop),
        );
        check("unlink", shmstore::unlink(name));
    }
    // Nothing was created, removed or initialised.
    assert!(!std::path::Path::new("/dev")
        .join(format!("shmstore-test-escape-{pid}"))
        .exists());
    assert_eq!(fs::metadata(shm_path(&space)).unwrap().len(), 0);
    assert_eq!(fs::metadata(shm_path(&long)).unwrap().len(), 0);
    let fresh = format!("shmstore-test-fresh b-{pid}");
    let _fresh_cleanup = Cleanup::new(&fresh);
    assert!(Shm::create(&fresh, Counter::at(1)).is_err());
    assert!(!exists(&fresh));

    // The longest valid name works.
    let mut longest = unique_name("longest");
    while longest.len() < 200 {
        longest.push('y');
    }
    let _longest_cleanup = Cleanup::new(&longest);
    let shm = Shm::create(&longest, Counter::at(3)).unwrap();
    assert_eq!(Shm::<Counter>::open(&longest).unwrap().read(), shm.read());
}

#[test]
fn not_found_and_already_exists() {
    let (name, _cleanup) = region("nf");
    let e = Shm::<Counter>::open(&name).expect_err("nothing there");
    assert!(
        matches!(&e, Error::NotFound { name: n } if *n == name),
        "{e:?}"
    );
    assert_mentions(&e, &[&name, "create it first"]);
    let e = shmstore::unlink(&name).expect_err("nothing there");
    assert!(matches!(&e, Error::NotFound { .. }), "{e:?}");
    assert!(!exists(&name), "open must not create");

    let shm = Shm::create(&name, Counter::at(1)).unwrap();
    let e = Shm::create(&name, Counter::at(2)).expect_err("taken");
    assert!(
        matches!(&e, Error::AlreadyExists { name: n } if *n == name),
        "{e:?}"
    );
    assert_mentions(&e, &[&name, "Shm::open"]);
    // Whatever the type or mode asked for.
    let e = Shm::<Pair>::options()
        .in_place(true)
        .create(&name, Pair { a: 0, b: 0 })
        .expect_err("taken");
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    assert_eq!(shm.read(), Counter::at(1), "the loser overwrote the region");
}

/// Opening `name` (with `open` and `open_or_create`) gives `Corrupt` whose reason mentions
/// `why`, runs no init and leaves the object as it was.
fn assert_corrupt(name: &str, why: &str) {
    let before = fs::read(shm_path(name)).unwrap();
    let e = Shm::<Counter>::open(name).expect_err("corrupt");
    match &e {
        Error::Corrupt { name: n, reason } => {
            assert_eq!(n, name);
            assert!(reason.contains(why), "{why:?} missing from {reason:?}");
        }
        other => panic!("{name}: expected Corrupt, got {other:?}"),
    }
    assert_mentions(&e, &[name, "unlink", "create it again"]);
    let e = Shm::<Counter>::open_or_create(name, || panic!("init ran over a corrupt object"))
        .expect_err("corrupt");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(
        fs::read(shm_path(name)).unwrap(),
        before,
        "the object changed"
    );
    assert!(shmstore::list().unwrap().iter().all(|r| r.name != name));
}

#[test]
fn garbage_is_corrupt() {
    for (len, why) in [
        (256, "magic"),
        (300, "magic"),
        (4096, "magic"),
        (100, "shorter than its own 256-byte header"),
        (1, "shorter"),
    ] {
        let (name, _cleanup) = region("garbage");
        let mut bytes = noise(len, 0x5eed + len as u64);
        bytes[0] = 0xa5; // neither "SHMSTORE" nor a blank header
        fs::write(shm_path(&name), &bytes).unwrap();
        assert_corrupt(&name, why);
    }
}

/// A valid region of `Counter`, its handle dropped, for the tests to damage.
fn valid_region(tag: &str) -> (String, Cleanup) {
    let (name, cleanup) = region(tag);
    drop(Shm::create(&name, Counter::at(9)).unwrap());
    (name, cleanup)
}

fn damage(name: &str) -> fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap()
}

#[test]
fn truncated_regions_are_corrupt_not_sigbus() {
    let (name, _cleanup) = valid_region("trunc300");
    assert!(fs::metadata(shm_path(&name)).unwrap().len() > 300);
    damage(&name).set_len(300).unwrap();
    assert_corrupt(&name, "truncated");

    let (name, _cleanup) = valid_region("trunc100");
    damage(&name).set_len(100).unwrap();
    assert_corrupt(&name, "shorter than its own 256-byte header");
}

#[test]
fn wrong_magic_or_format_version_is_corrupt() {
    let (name, _cleanup) = valid_region("magic");
    damage(&name).write_all_at(b"X", 0).unwrap();
    assert_corrupt(&name, "magic");

    let (name, _cleanup) = valid_region("format");
    damage(&name).write_all_at(&2u32.to_ne_bytes(), 8).unwrap();
    assert_corrupt(&name, "format version 2");
}

#[test]
fn an_empty_or_blank_object_is_incomplete_and_open_or_create_initialises_it() {
    // Blank is empty, or exactly the zeros an interrupted creation of the type leaves (other
    // zeros are someone's data: see tests/creation.rs).
    let (probe, _probe_cleanup) = region("blank-size");
    drop(Shm::create(&probe, Counter::at(0)).unwrap());
    let blank_len = fs::metadata(shm_path(&probe)).unwrap().len() as usize;
    for len in [0, blank_len] {
        let (name, _cleanup) = region("empty");
        fs::write(shm_path(&name), vec![0u8; len]).unwrap();
        let e = Shm::<Counter>::open(&name).expect_err("nothing in it");
        assert!(
            matches!(&e, Error::Incomplete { name: n } if *n == name),
            "{e:?}"
        );
        assert_mentions(&e, &[&name, "open_or_create", "unlink"]);

        let shm = Shm::<Counter>::open_or_create(&name, || Counter::at(11)).unwrap();
        assert_eq!(shm.read(), Counter::at(11));
        assert_eq!(Shm::<Counter>::open(&name).unwrap().read(), Counter::at(11));
    }
}

#[test]
fn another_type_is_a_layout_mismatch_that_lists_the_differing_fields() {
    let (name, _cleanup) = region("wrongtype");
    let _shm = Shm::create(&name, Pair { a: 1, b: 2 }).unwrap();
    let e = Shm::<Counter>::open(&name).expect_err("a Pair is not a Counter");
    match &e {
        Error::LayoutMismatch {
            name: n,
            expected,
            found,
            expected_fingerprint,
            found_fingerprint,
            differences,
            ..
        } => {
            assert_eq!(n, &name);
            assert_eq!((expected.as_str(), found.as_str()), ("Counter", "Pair"));
            assert_ne!(expected_fingerprint, found_fingerprint);
            let all = differences.join("\n");
            for field in ["`count`", "`mirror`", "`a`", "`b`"] {
                assert!(all.contains(field), "{field} missing from {differences:?}");
            }
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }
    assert_mentions(&e, &[&name, "`count`", "`a`", "same type definition"]);
    // open_or_create refuses too, and leaves the region alone.
    let e = Shm::<Counter>::open_or_create(&name, || panic!("init ran")).expect_err("mismatch");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");
    assert_eq!(
        Shm::<Pair>::open(&name).unwrap().read(),
        Pair { a: 1, b: 2 }
    );
}

#[test]
fn a_struct_of_the_same_name_with_a_retyped_field_in_another_binary_is_a_layout_mismatch() {
    // The helper binary's `Limits` has `burst: f32` where ours has `burst: u32`.
    let (name, _cleanup) = region("retyped");
    assert_eq!(helper!("create-retyped", name).finish_ok(), ["created"]);
    let e = Shm::<Limits>::open(&name).expect_err("burst is an f32 there");
    match &e {
        Error::LayoutMismatch {
            expected,
            found,
            expected_fingerprint,
            found_fingerprint,
            differences,
            ..
        } => {
            assert_eq!((expected.as_str(), found.as_str()), ("Limits", "Limits"));
            assert_ne!(expected_fingerprint, found_fingerprint);
            assert_eq!(differences.len(), 1, "{differences:?}");
            let d = &differences[0];
            assert!(
                d.contains("`burst`") && d.contains("u32") && d.contains("f32"),
                "{d}"
            );
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }
    assert_mentions(&e, &[&name, "`burst`"]);
    let msg = e.to_string();
    assert!(!msg.contains("`rate`") && !msg.contains("`seq`"), "{msg}");

    // And the other way round: the helper refuses this binary's `Limits`.
    let (name, _cleanup) = region("retyped-back");
    let _shm = Shm::create(
        &name,
        Limits {
            rate: 1,
            burst: 2,
            seq: 3,
        },
    )
    .unwrap();
    let lines = helper!("open-retyped", name).finish_ok();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("err LayoutMismatch ") && lines[0].contains("`burst`"),
        "{lines:?}"
    );
}

#[test]
fn a_user_the_mode_refuses_gets_permission_denied() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let (name, _cleanup) = region("perm");
    let shm = Shm::<Counter>::create(&name, Counter::at(5)).unwrap(); // mode 0600, owner root

    // uid 65534 cannot open a 0600 object of root's: the mode refuses, whatever it trusts.
    for allow in [false, true] {
        let h = if allow {
            helper!("setuid-open", name, "allow-other-owner")
        } else {
            helper!("setuid-open", name)
        };
        let lines = h.finish_ok();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("err PermissionDenied ") && lines[0].contains(&name),
            "{lines:?}"
        );
        assert!(lines[0].contains("mode"), "{lines:?}");
    }

    // With the mode granting access, the other owner still needs allow_other_owner(true).
    drop(shm);
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &shm_path(&name),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .unwrap();
    let lines = helper!("setuid-open", name).finish_ok();
    assert!(
        lines[0].starts_with("err PermissionDenied ") && lines[0].contains("allow_other_owner"),
        "{lines:?}"
    );
    assert_eq!(
        helper!("setuid-open", name, "allow-other-owner").finish_ok(),
        ["ok 5"]
    );
}

#[test]
fn a_region_owned_by_another_user_needs_allow_other_owner() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let (name, _cleanup) = region("owner");
    drop(Shm::<Counter>::create(&name, Counter::at(8)).unwrap());
    nix::unistd::chown(
        &shm_path(&name),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();

    let e = Shm::<Counter>::open(&name).expect_err("another owner");
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    assert_mentions(&e, &[&name, "uid 65534", "allow_other_owner(true)"]);
    let e = Shm::<Counter>::open_or_create(&name, || panic!("init ran")).expect_err("owner");
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");

    let shm = Shm::<Counter>::options()
        .allow_other_owner(true)
        .open(&name)
        .expect("trusted explicitly");
    assert_eq!(shm.read(), Counter::at(8));
}

#[test]
fn a_directory_or_a_symbolic_link_under_the_name_is_an_io_error() {
    // A directory.
    let (name, _cleanup) = region("dir");
    fs::create_dir(shm_path(&name)).unwrap();
    let e = Shm::<Counter>::open(&name).expect_err("a directory");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_mentions(&e, &[&name]);
    let e = Shm::<Counter>::open_or_create(&name, || panic!("init ran")).expect_err("dir");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");

    // A symbolic link to a valid region is not followed: anyone could plant one.
    let (target, _target_cleanup) = region("link-target");
    let _shm = Shm::create(&target, Counter::at(1)).unwrap();
    let (name, _cleanup) = region("symlink");
    std::os::unix::fs::symlink(shm_path(&target), shm_path(&name)).unwrap();
    let e = Shm::<Counter>::open(&name).expect_err("a symbolic link");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_mentions(&e, &[&name]);
}
