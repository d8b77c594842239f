//! What the regions look like to the operating system: their mode whatever the umask, no
//! descriptor leaking into exec'd programs, `unlink_on_drop`, and `list()`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use shmstore::Shm;
use shmstore_tests::{
    exists, helper, region, shm_path, unique_name, Cleanup, Counter, Limits, Pair,
};

fn mode_of(name: &str) -> u32 {
    fs::metadata(shm_path(name)).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_mode_is_applied_exactly_whatever_the_umask() {
    for (umask, mode, how) in [
        ("077", "666", "create"),
        ("077", "644", "open-or-create"),
        ("077", "660", "in-place"),
        ("000", "600", "create"),
        ("000", "640", "open-or-create"),
        ("022", "666", "in-place"),
        ("777", "600", "open-or-create"),
    ] {
        let (name, _cleanup) = region("mode");
        assert_eq!(
            helper!("create-with-umask", name, umask, mode, how).finish_ok(),
            ["created"]
        );
        assert_eq!(
            mode_of(&name),
            u32::from_str_radix(mode, 8).unwrap(),
            "umask {umask}, mode {mode}, {how}"
        );
    }
    // The default is 0600.
    let (name, _cleanup) = region("mode-default");
    drop(Shm::create(&name, Counter::at(0)).unwrap());
    assert_eq!(mode_of(&name), 0o600);
}

#[test]
fn re_initialising_an_abandoned_object_applies_the_requested_mode() {
    for mode in [0o600, 0o640] {
        let (name, _cleanup) = region("mode-reinit");
        fs::write(shm_path(&name), b"").unwrap();
        fs::set_permissions(shm_path(&name), fs::Permissions::from_mode(0o666)).unwrap();
        let shm = Shm::<Counter>::options()
            .mode(mode)
            .open_or_create(&name, || Counter::at(4))
            .unwrap();
        assert_eq!(shm.read(), Counter::at(4));
        assert_eq!(mode_of(&name), mode);
    }
    // Another user's object, trusted explicitly, keeps its owner's mode.
    if shmstore_tests::is_root() {
        let (name, _cleanup) = region("mode-reinit-other");
        fs::write(shm_path(&name), b"").unwrap();
        fs::set_permissions(shm_path(&name), fs::Permissions::from_mode(0o644)).unwrap();
        let other = nix::unistd::Uid::from_raw(65534);
        nix::unistd::chown(&shm_path(&name), Some(other), None).unwrap();
        let shm = Shm::<Counter>::options()
            .allow_other_owner(true)
            .open_or_create(&name, || Counter::at(5))
            .unwrap();
        assert_eq!(shm.read(), Counter::at(5));
        assert_eq!(mode_of(&name), 0o644);
    }
}

#[test]
fn no_descriptor_leaks_into_an_exec_d_program() {
    // The helper creates, opens and open-or-creates regions (default and in place), lists
    // them, and with its handles alive execs a program that lists its descriptors on /dev/shm.
    let (name1, mut cleanup) = region("cloexec");
    let name2 = unique_name("cloexec");
    cleanup.add(&name2);
    cleanup.add(&format!("{name2}.in-place"));
    assert_eq!(
        helper!("hold-shm-and-exec", name1, name2).finish_ok(),
        ["end"]
    );

    // The control: a descriptor opened without O_CLOEXEC is seen by the same check.
    let (name1, mut cleanup) = region("cloexec-control");
    let name2 = unique_name("cloexec-control");
    cleanup.add(&name2);
    cleanup.add(&format!("{name2}.in-place"));
    let lines = helper!("hold-shm-and-exec", name1, name2, "control").finish_ok();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("fd ") && lines[0].ends_with(&format!("/dev/shm/{name1}")),
        "{lines:?}"
    );
    assert_eq!(lines[1], "end");
}

#[test]
fn unlink_on_drop_removes_the_name_only_if_it_is_still_this_handles_object() {
    let (name, _cleanup) = region("unlink-on-drop");

    // Off by default.
    drop(Shm::create(&name, Counter::at(1)).unwrap());
    assert!(exists(&name));
    shmstore::unlink(&name).unwrap();

    // On: the creator's handle removes it...
    let shm = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .create(&name, Counter::at(1))
        .unwrap();
    let plain = Shm::<Counter>::open(&name).unwrap();
    drop(plain);
    assert!(exists(&name), "a handle without unlink_on_drop removed it");
    drop(shm);
    assert!(!exists(&name));

    // ... and so does an opener's.
    let creator = Shm::create(&name, Counter::at(1)).unwrap();
    drop(
        Shm::<Counter>::options()
            .unlink_on_drop(true)
            .open(&name)
            .unwrap(),
    );
    assert!(!exists(&name));
    assert_eq!(
        creator.read(),
        Counter::at(1),
        "the mapping outlives the name"
    );
    drop(creator);

    // The name now refers to another process's object: dropping leaves it alone.
    let first = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .create(&name, Counter::at(1))
        .unwrap();
    shmstore::unlink(&name).unwrap();
    assert_eq!(
        helper!("create-with-umask", name, "022", "600", "create").finish_ok(),
        ["created"]
    );
    drop(first);
    assert!(exists(&name), "dropped another process's region");
    let second = Shm::<Counter>::open(&name).unwrap();
    assert_ne!(second.creator_pid(), std::process::id());

    // The name was removed and not replaced: dropping does nothing (and does not panic).
    let third = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .open(&name)
        .unwrap();
    shmstore::unlink(&name).unwrap();
    drop(third);
    assert!(!exists(&name));
}

#[test]
fn list_shows_regions_with_their_type_and_skips_foreign_objects() {
    let (limits_name, _c1) = region("list-limits");
    let limits = Shm::create(
        &limits_name,
        Limits {
            rate: 1,
            burst: 2,
            seq: 3,
        },
    )
    .unwrap();
    let (pair_name, _c2) = region("list-pair");
    let pair = Shm::<Pair>::options()
        .in_place(true)
        .create(&pair_name, Pair { a: 1, b: 2 })
        .unwrap();
    let (array_name, _c3) = region("list-array");
    let _array = Shm::<[u64; 100]>::create(&array_name, [7; 100]).unwrap();
    {
        let mut g = limits.lock().unwrap();
        g.seq += 1;
    }

    // Objects of other programs, and things that are not regions at all.
    let mut foreign = Vec::new();
    let mut cleanup = Cleanup::empty();
    for (tag, content) in [
        ("list-foreign", b"not a region, just some text\n".repeat(40)),
        ("list-short", b"tiny".to_vec()),
        ("list-empty", Vec::new()),
    ] {
        let name = unique_name(tag);
        cleanup.add(&name);
        fs::write(shm_path(&name), content).unwrap();
        foreign.push(name);
    }
    let dir = unique_name("list-dir");
    cleanup.add(&dir);
    fs::create_dir(shm_path(&dir)).unwrap();
    foreign.push(dir);

    let all = shmstore::list().expect("list never fails on foreign objects");
    let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    for name in &foreign {
        assert!(!names.contains(&name.as_str()), "listed {name}");
    }

    let find = |name: &str| {
        all.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    let me = std::process::id();
    let l = find(&limits_name);
    assert_eq!(
        (
            l.type_name.as_str(),
            l.size,
            l.in_place,
            l.poisoned,
            l.creator_pid
        ),
        ("Limits", 16, false, false, me)
    );
    assert_eq!(l.version, limits.version());
    assert!(l.version > 0);
    let p = find(&pair_name);
    assert_eq!(
        (
            p.type_name.as_str(),
            p.size,
            p.in_place,
            p.poisoned,
            p.creator_pid
        ),
        ("Pair", 16, true, false, me)
    );
    assert_eq!(p.version, pair.version());
    let a = find(&array_name);
    assert_eq!(
        (a.type_name.as_str(), a.size, a.in_place),
        ("[u64; 100]", 800, false)
    );
}
