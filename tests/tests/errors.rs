//! Every `Error` variant, provoked for real, and what its message tells the user.
//! (`Error::Timeout` is provoked in `crash.rs`, against a live creator busy in `init`;
//! `NotFound` and `AlreadyExists` in `creation.rs`, on every backend.)

use std::fs;

use shmstore::inspect::Inspector;
use shmstore::{Error, Shm};
use shmstore_tests::{
    assert_mentions, exists, helper, is_root, noise, plant, region, shm_path, stored_bytes,
    unique_name, Backend, Counter, Limits, MsgQueue, Pair, Place,
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
    let _cleanup = [Place::adopt_name(&space), Place::adopt_name(&long)];
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
    let _fresh_cleanup = Place::adopt_name(&fresh);
    assert!(Shm::create(&fresh, Counter::at(1)).is_err());
    assert!(!exists(&fresh));

    // The longest valid name works.
    let mut longest = unique_name("longest");
    while longest.len() < 200 {
        longest.push('y');
    }
    let _longest_cleanup = Place::adopt_name(&longest);
    let shm = Shm::create(&longest, Counter::at(3)).unwrap();
    assert_eq!(Shm::<Counter>::open(&longest).unwrap().read(), shm.read());
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

// ---- every backend (the matrix) ----

shmstore_tests::for_each_backend!(
    layout_mismatch_between_binaries,
    permissions_of_another_user,
    corrupt_input_is_refused,
);

/// The helper's `Limits` has `burst: f32` where this binary's has `burst: u32`: each refuses
/// the other's region with a `LayoutMismatch` naming only `burst`.
fn layout_mismatch_between_binaries(backend: Backend) {
    let place = Place::new(backend, "retyped");
    assert_eq!(helper!("create-retyped", place).finish_ok(), ["created"]);
    let e = Shm::<Limits>::open(&place).expect_err("burst is an f32 there");
    match &e {
        Error::LayoutMismatch {
            name,
            expected,
            found,
            expected_fingerprint,
            found_fingerprint,
            differences,
        } => {
            assert_eq!(name, &place.to_string());
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
    assert_mentions(&e, &[&place.to_string(), "`burst`"]);
    let msg = e.to_string();
    assert!(!msg.contains("`rate`") && !msg.contains("`seq`"), "{msg}");
    let e = Shm::<Limits>::open_or_create(&place, || panic!("init ran over another type"))
        .expect_err("mismatch");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");
    let e = Shm::<Limits>::open_reader(&place).expect_err("mismatch");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");

    // And the other way round.
    let place = Place::new(backend, "retyped-back");
    let _shm = Shm::<Limits>::create(
        &place,
        Limits {
            rate: 1,
            burst: 2,
            seq: 3,
        },
    )
    .unwrap();
    let lines = helper!("open-retyped", place).finish_ok();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("err LayoutMismatch ") && lines[0].contains("`burst`"),
        "{lines:?}"
    );
}

/// A process dropped to uid 65534 is refused a region of root's: by the mode (0600), or by the
/// owner check without `allow_other_owner` (0666); with mode 0644 and `allow_other_owner`, it
/// reads through a `ShmReader`, sees changes, and cannot open read-write.
fn permissions_of_another_user(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let private = Place::new(backend, "perm-0600");
    let _private = Shm::<Counter>::create(&private, Counter::at(5)).unwrap();
    for allow in [false, true] {
        let h = if allow {
            helper!("setuid-open", private, "allow-other-owner")
        } else {
            helper!("setuid-open", private)
        };
        let lines = h.finish_ok();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("err PermissionDenied ")
                && lines[0].contains(&private.to_string())
                && lines[0].contains("mode"),
            "allow_other_owner {allow}: {lines:?}"
        );
    }

    let open = Place::new(backend, "perm-0666");
    let _open = Shm::<Counter>::options()
        .mode(0o666)
        .create(open.location(), Counter::at(6))
        .unwrap();
    let lines = helper!("setuid-open", open).finish_ok();
    assert!(
        lines.len() == 1
            && lines[0].starts_with("err PermissionDenied ")
            && lines[0].contains("allow_other_owner"),
        "{lines:?}"
    );
    assert_eq!(
        helper!("setuid-open", open, "allow-other-owner").finish_ok(),
        ["ok 6"]
    );

    for in_place in [false, true] {
        let readable = Place::new(backend, "perm-0644");
        let shm = Shm::<Counter>::options()
            .mode(0o644)
            .in_place(in_place)
            .create(readable.location(), Counter::at(11))
            .unwrap();
        let v0 = shm.version();
        let mut child = helper!("setuid-reader", readable);
        child.expect("reader-plain err PermissionDenied");
        child.expect("read-write err PermissionDenied");
        child.expect(&format!("reader 11 {v0} {in_place}"));
        *shm.lock().unwrap() = Counter::at(12);
        let v1 = shm.version();
        assert_eq!(child.finish_ok(), [format!("changed 12 {v1}")]);
        assert!(!shm.is_poisoned());
    }
}

/// Opening `place` in every way gives `Corrupt` whose reason mentions `why`, runs no init,
/// never crashes (no SIGBUS), and leaves the bytes as they were.
fn assert_corrupt(place: &Place, why: &str) {
    let before = stored_bytes(place);
    let check = |what: &str, e: Error| match &e {
        Error::Corrupt { name, reason } => {
            assert_eq!(name, &place.to_string(), "{what}");
            assert!(
                reason.contains(why),
                "{what}: {why:?} missing from {reason:?}"
            );
        }
        other => panic!("{what} of {place}: expected Corrupt, got {other:?}"),
    };
    let e = Shm::<Counter>::open(place).unwrap_err();
    assert_mentions(&e, &[&place.to_string(), "unlink", "create it again"]);
    check("open", e);
    check(
        "open_reader",
        Shm::<Counter>::open_reader(place).unwrap_err(),
    );
    check(
        "open_or_create",
        Shm::<Counter>::open_or_create(place, || panic!("init ran over a corrupt object"))
            .unwrap_err(),
    );
    check("queue open", MsgQueue::open(place).unwrap_err());
    check(
        "Inspector::open",
        Inspector::open(place.location()).unwrap_err(),
    );
    assert_eq!(stored_bytes(place), before, "the object changed");
    assert!(shmstore::list()
        .unwrap()
        .iter()
        .all(|r| r.location != *place.location()));
}

/// Garbage, a valid region cut short, another magic or another format version: `Corrupt`
/// from every way of opening, in this process and another, never a crash (no SIGBUS).
fn corrupt_input_is_refused(backend: Backend) {
    // Garbage, long and short.
    for (len, why) in [
        (256, "magic"),
        (300, "magic"),
        (4096, "magic"),
        (100, "shorter than its own 256-byte header"),
        (1, "shorter"),
    ] {
        let place = Place::new(backend, "garbage");
        let mut bytes = noise(len, 0x5eed + len as u64);
        bytes[0] = 0xa5; // neither "SHMSTORE" nor a blank header
        plant(&place, &bytes);
        assert_corrupt(&place, why);
        // Another process gets the same answer.
        assert_eq!(
            helper!("queue-open-as", place, "value").finish_ok(),
            ["err Corrupt"]
        );
    }

    // A valid region cut short: its header describes more bytes than there are. A segment
    // cannot shrink, so the System V case copies the start of a valid region into a smaller
    // segment.
    let valid = Place::new(backend, "valid");
    drop(Shm::<Counter>::create(&valid, Counter::at(9)).unwrap());
    let whole = stored_bytes(&valid);
    assert!(whole.len() > 300);
    for (len, why) in [
        (300, "truncated"),
        (100, "shorter than its own 256-byte header"),
    ] {
        let place = Place::new(backend, "truncated");
        plant(&place, &whole[..len]);
        assert_corrupt(&place, why);
    }
    // A valid region with another magic, or a format version this build does not read (2 is
    // the version of types with kinds: tests/values.rs).
    for (offset, patch, why) in [
        (0, &b"X"[..], "magic"),
        (8, &3u32.to_ne_bytes()[..], "format version 3"),
    ] {
        let place = Place::new(backend, "damaged");
        let mut bytes = whole.clone();
        bytes[offset..offset + patch.len()].copy_from_slice(patch);
        plant(&place, &bytes);
        assert_corrupt(&place, why);
    }
    // The valid one is fine.
    assert_eq!(Shm::<Counter>::open(&valid).unwrap().read(), Counter::at(9));
}

/// Bug: a handle opened with `unlink_on_drop(true)` that the open refused (another type,
/// another kind) dropped the region it had looked at, which removed the name: the refused
/// opener deleted a region that belonged to someone else.
#[test]
fn regression_a_refused_open_with_unlink_on_drop_removed_the_region() {
    let place = Place::new(Backend::Posix, "refused-unlink");
    let owner = shmstore::Shm::<u64>::create(place.location().clone(), 7).expect("create");
    let refused = shmstore::Shm::<[u8; 3]>::options()
        .unlink_on_drop(true)
        .open(place.location().clone());
    assert!(matches!(
        refused,
        Err(shmstore::Error::LayoutMismatch { .. })
    ));
    let refused = shmstore::ShmQueue::<u64, 4>::options()
        .unlink_on_drop(true)
        .open(place.location().clone());
    assert!(matches!(refused, Err(shmstore::Error::WrongKind { .. })));
    assert!(
        place.exists(),
        "the refused opens left the region under its name"
    );
    assert!(!owner.is_removed().expect("look"));
    assert_eq!(
        shmstore::Shm::<u64>::open(place.location().clone())
            .expect("open")
            .read(),
        7
    );
}
