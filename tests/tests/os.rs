//! What the regions look like to the operating system: their mode whatever the umask, no
//! descriptor leaking into exec'd programs, `unlink_on_drop`, and `list()`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::TryLockError;

use shmstore::inspect::Inspector;
use shmstore::{QueueMode, Shm};
use shmstore_tests::{
    assert_not_found, create_queue, helper, region, shm_path, unique_name, Backend, Counter,
    Limits, Msg, MsgQueue, Pair, Place, PATIENCE, QUEUE_CAPACITY,
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
    let (name1, _cleanup) = region("cloexec");
    let name2 = unique_name("cloexec");
    let _cleanup2 = [
        Place::adopt_name(&name2),
        Place::adopt_name(&format!("{name2}.in-place")),
    ];
    assert_eq!(
        helper!("hold-shm-and-exec", name1, name2).finish_ok(),
        ["end"]
    );

    // The control: a descriptor opened without O_CLOEXEC is seen by the same check.
    let (name1, _cleanup) = region("cloexec-control");
    let name2 = unique_name("cloexec-control");
    let _cleanup2 = [
        Place::adopt_name(&name2),
        Place::adopt_name(&format!("{name2}.in-place")),
    ];
    let lines = helper!("hold-shm-and-exec", name1, name2, "control").finish_ok();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("fd ") && lines[0].ends_with(&format!("/dev/shm/{name1}")),
        "{lines:?}"
    );
    assert_eq!(lines[1], "end");
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
    let mut cleanup = Vec::new();
    for (tag, content) in [
        ("list-foreign", b"not a region, just some text\n".repeat(40)),
        ("list-short", b"tiny".to_vec()),
        ("list-empty", Vec::new()),
    ] {
        let name = unique_name(tag);
        cleanup.push(Place::adopt_name(&name));
        fs::write(shm_path(&name), content).unwrap();
        foreign.push(name);
    }
    let dir = unique_name("list-dir");
    cleanup.push(Place::adopt_name(&dir));
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

// ---- every backend (the matrix) ----

shmstore_tests::for_each_backend!(
    unlink_while_mapped,
    unlink_on_drop_removes_the_name_only_if_it_is_still_this_handles_object,
    list_and_inspect,
);

/// `unlink` while this process and another one map the region: both handles keep working on
/// the same (now nameless) region, opening says `NotFound`, and a new create at the location
/// makes a fresh region that the old handles never see.
fn unlink_while_mapped(backend: Backend) {
    let place = Place::new(backend, "unlink");
    let shm = Shm::<Counter>::create(&place, Counter::at(1)).unwrap();
    let mut holder = helper!("write-and-hold", place, 5);
    holder.expect("holding");

    shmstore::unlink(place.location()).unwrap();
    assert!(!place.exists());
    assert_not_found(Shm::<Counter>::open(&place), &place);
    assert_not_found(shmstore::unlink(place.location()), &place);
    assert_eq!(
        helper!("queue-open-as", place, "value").finish_ok(),
        ["err NotFound"]
    );

    // The helper still holds the lock of the removed region: its commit reaches this handle.
    assert!(matches!(shm.try_lock(), Err(TryLockError::WouldBlock)));
    holder.send("go");
    assert_eq!(holder.finish_ok(), ["released"]);
    assert_eq!(shm.read(), Counter::at(5));
    *shm.lock().unwrap() = Counter::at(6);
    assert_eq!(shm.read(), Counter::at(6));

    // A fresh region at the same location, independent of the old one.
    let fresh = Shm::<Counter>::open_or_create(&place, || Counter::at(100)).unwrap();
    assert_eq!(fresh.read(), Counter::at(100));
    assert_eq!(shm.read(), Counter::at(6));
    *shm.lock().unwrap() = Counter::at(7);
    assert_eq!(fresh.read(), Counter::at(100));
    // Another process opens the fresh one.
    let mut waiter = helper!("wait-change", place, "shm");
    waiter.expect(&format!("waiting {}", fresh.version()));
    *fresh.lock().unwrap() = Counter::at(101);
    assert_eq!(
        waiter.finish_ok(),
        [format!("changed {} 101", fresh.version())]
    );
    assert_eq!(shm.read(), Counter::at(7));
}

/// A handle with `unlink_on_drop` (off by default; a creator's or an opener's) removes the
/// location when dropped only if it still refers to its own object, not to one created there
/// since (by another process, too); the other handles keep working.
fn unlink_on_drop_removes_the_name_only_if_it_is_still_this_handles_object(backend: Backend) {
    let place = Place::new(backend, "unlink-on-drop");

    // Off by default.
    drop(Shm::<Counter>::create(&place, Counter::at(1)).unwrap());
    assert!(place.exists());
    shmstore::unlink(place.location()).unwrap();

    // On: the creator's handle removes it...
    let shm = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .create(place.location(), Counter::at(1))
        .unwrap();
    let plain = Shm::<Counter>::open(&place).unwrap();
    drop(plain);
    assert!(place.exists(), "a handle without unlink_on_drop removed it");
    drop(shm);
    assert!(!place.exists());

    // ... and so does an opener's.
    let creator = Shm::<Counter>::create(&place, Counter::at(1)).unwrap();
    drop(
        Shm::<Counter>::options()
            .unlink_on_drop(true)
            .open(place.location())
            .unwrap(),
    );
    assert!(!place.exists());
    assert_eq!(
        creator.read(),
        Counter::at(1),
        "the mapping outlives the name"
    );
    drop(creator);

    // The name now refers to another process's object: dropping leaves it alone.
    let first = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .create(place.location(), Counter::at(1))
        .unwrap();
    shmstore::unlink(place.location()).unwrap();
    assert_eq!(
        helper!("create-with-umask", place, "022", "600", "create").finish_ok(),
        ["created"]
    );
    drop(first);
    assert!(place.exists(), "dropped another process's region");
    let second = Shm::<Counter>::open(&place).unwrap();
    assert_ne!(second.creator_pid(), std::process::id());
    assert_eq!(second.read(), Counter::at(1));

    // The name was removed and not replaced: dropping does nothing (and does not panic).
    let third = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .open(place.location())
        .unwrap();
    shmstore::unlink(place.location()).unwrap();
    drop(third);
    assert!(!place.exists());
    assert_not_found(Shm::<Counter>::open(&place), &place);
    // The other handles keep working.
    *second.lock().unwrap() = Counter::at(3);
    assert_eq!(second.read(), Counter::at(3));

    // A queue too.
    let q = MsgQueue::options()
        .unlink_on_drop(true)
        .create(place.location())
        .unwrap();
    assert_eq!(helper!("queue-open-as", place, "queue").finish_ok(), ["ok"]);
    drop(q);
    assert!(!place.exists());
}

/// The bytes of a `Counter` as the region stores them (native endianness, `#[repr(C)]`).
fn counter_bytes(c: Counter) -> Vec<u8> {
    [c.count.to_ne_bytes(), c.mirror.to_ne_bytes()].concat()
}

/// `list()` shows POSIX regions by name and System V regions as `sysv:0x…` (files are not
/// searched for); `Inspector::open` reads a region of every backend, also as another process
/// writes it.
fn list_and_inspect(backend: Backend) {
    let place = Place::new(backend, "list");
    let queue = Place::new(backend, "list-queue");
    let shm = Shm::<Counter>::create(&place, Counter::at(3)).unwrap();
    *shm.lock().unwrap() = Counter::at(4);
    let q = create_queue(&queue, QueueMode::Mpmc);
    q.try_push(Msg::new(0, 0)).unwrap();

    let listed = shmstore::list().unwrap();
    let find = |p: &Place| listed.iter().find(|r| r.location == *p.location());
    match backend {
        Backend::File => {
            assert!(find(&place).is_none() && find(&queue).is_none());
        }
        Backend::Posix | Backend::SysV => {
            let info = find(&place).unwrap_or_else(|| panic!("{place} is not listed"));
            assert_eq!(info.name, place.to_string());
            if backend == Backend::SysV {
                let key = place.key().unwrap();
                assert_eq!(info.name, format!("sysv:{:#010x}", key as u32));
                assert!(info.name.starts_with("sysv:0x5e"), "{}", info.name);
            }
            assert_eq!((info.type_name.as_str(), info.size), ("Counter", 16));
            assert_eq!(info.version, shm.version());
            assert_eq!(info.creator_pid, std::process::id());
            assert!(!info.poisoned && !info.in_place && info.queue.is_none());
            let info = find(&queue).unwrap_or_else(|| panic!("{queue} is not listed"));
            let qi = info.queue.as_ref().expect("listed as a queue");
            assert_eq!(
                (qi.mode, qi.capacity, qi.len, qi.closed),
                (QueueMode::Mpmc, QUEUE_CAPACITY, 1, false)
            );
        }
    }

    let inspector = Inspector::open(place.location()).unwrap();
    assert_eq!(inspector.name(), place.to_string());
    assert_eq!(inspector.type_name(), "Counter");
    assert!(!inspector.is_queue());
    assert_eq!(inspector.read(), counter_bytes(Counter::at(4)));
    assert_eq!(inspector.version(), shm.version());
    let info = inspector.info();
    assert_eq!(info.location, *place.location());
    assert_eq!(info.name, place.to_string());
    let names: Vec<&str> = inspector.fields().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["count", "mirror"]);

    // Another process writes: the inspector sees the committed value, never the one in
    // progress.
    let v0 = inspector.version();
    let mut writer = helper!("write-and-hold", place, 9);
    writer.expect("holding");
    assert_eq!(inspector.read(), counter_bytes(Counter::at(4)));
    writer.send("go");
    assert_eq!(writer.finish_ok(), ["released"]);
    let v1 = inspector.wait_for_change(v0, Some(PATIENCE)).unwrap();
    assert_eq!(v1, shm.version());
    assert_eq!(inspector.read(), counter_bytes(Counter::at(9)));

    let queue_inspector = Inspector::open(queue.location()).unwrap();
    assert!(queue_inspector.is_queue());
    assert_eq!(queue_inspector.type_name(), "Msg");
    assert_eq!(queue_inspector.info().queue.map(|q| q.len), Some(1));
}
