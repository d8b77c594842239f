//! Issue 15, red team: the value types, the `Editor` and the descriptor's kinds table attacked
//! by other processes: a writer killed at every point of an untyped commit, and a peer with
//! write access that rewrites the descriptor of a region others inspect and edit.

use std::time::Duration;

use shmstore::inspect::{Editor, Inspector};
use shmstore::{Error, Shm};
use shmstore_tests::{helper, region, ServiceConfig};

/// What `edit-loop` commits for `n`, checked field by field against each other: every field of
/// one commit, or every field of the one before, never a mix.
fn check_one_commit(config: &ServiceConfig) -> u64 {
    let n = config.rate as u64;
    assert_eq!(config.rate, n as f64, "rate {}", config.rate);
    let text = format!("gen-{n}");
    assert_eq!(
        config.service_name.as_str(),
        Ok(text.as_str()),
        "{config:?}"
    );
    assert_eq!(config.hostname.as_str(), Ok(text.as_str()), "{config:?}");
    let ports = config.upstream_ports.as_slice().expect("a valid length");
    assert_eq!(ports.len() as u64, n % 17, "{config:?}");
    assert!(
        ports.iter().all(|&p| u64::from(p) == n % 65_536),
        "{config:?}"
    );
    n
}

#[test]
fn an_editor_killed_at_any_point_of_a_commit_leaves_one_whole_commit() {
    let (name, _cleanup) = region("values-edit-kill");
    let shm = Shm::<ServiceConfig>::create(&name, {
        let mut first = ServiceConfig::default();
        first.service_name.set("gen-0").unwrap();
        first.hostname.set("gen-0").unwrap();
        first
    })
    .unwrap();
    let mut last = 0;
    for round in 0..100u64 {
        let mut editor = helper!("edit-loop", name);
        editor.expect("committed");
        // A different point of the loop each round: a commit is a few microseconds, so the
        // kill lands before, inside or after one (which one is not asserted).
        std::thread::sleep(Duration::from_micros(137 * (round % 23)));
        drop(editor); // SIGKILL, then reaped
        let read = check_one_commit(&shm.read());
        // The next locker rolls back whatever the dead editor left half-written.
        let locked = check_one_commit(&shm.lock().unwrap());
        assert_eq!(read, locked, "the reader and the locker disagree");
        assert!(
            locked >= 1,
            "the first commit was published before the kill"
        );
        assert!(locked >= last, "a commit was lost: {locked} after {last}");
        last = locked;
        let view = Inspector::open(&name).unwrap();
        let bytes = view.read();
        assert_eq!(
            view.value(&bytes, "service_name").unwrap().to_string(),
            format!("\"gen-{locked}\"")
        );
        // No stale bytes after the text: every commit writes the whole field.
        let text_at = core::mem::offset_of!(ServiceConfig, service_name);
        let tail = &bytes[text_at + 4 + format!("gen-{locked}").len()..text_at + 64];
        assert!(tail.iter().all(|&b| b == 0), "{tail:?}");
    }
}

/// The offset, in the region's file, of the `u64` right after the first occurrence of `needle`
/// in its descriptor.
fn u64_after(file: &[u8], needle: &[u8]) -> usize {
    let at = file
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in the descriptor"));
    at + needle.len()
}

#[test]
fn a_peer_that_inflates_a_text_capacity_in_the_descriptor_gets_an_error_not_an_abort() {
    let (name, place) = region("values-edit-forged-capacity");
    let _shm = Shm::<ServiceConfig>::options()
        .mode(0o666)
        .create(&name, ServiceConfig::example())
        .unwrap();
    // What a peer with write access can do without changing any length: give `service_name`
    // a terabyte of capacity, in its field row and in its kinds entry alike, so that the
    // descriptor still decodes.
    let path = place.path().unwrap();
    let mut file = std::fs::read(&path).unwrap();
    let terabyte = (1u64 << 40).to_ne_bytes();
    let mut row = 18u32.to_ne_bytes().to_vec();
    row.extend_from_slice(b"service_name.bytes");
    row.extend_from_slice(&1u32.to_ne_bytes()); // u8
    let count = u64_after(&file, &row) + 8 + 4; // after the offset and the dimension count
    assert_eq!(file[count..count + 8], 60u64.to_ne_bytes());
    file[count..count + 8].copy_from_slice(&terabyte);
    let mut entry = 12u32.to_ne_bytes().to_vec();
    entry.extend_from_slice(b"service_name");
    entry.extend_from_slice(&1u32.to_ne_bytes()); // text
    let capacity = u64_after(&file, &entry);
    assert_eq!(file[capacity..capacity + 8], 60u64.to_ne_bytes());
    file[capacity..capacity + 8].copy_from_slice(&terabyte);
    std::fs::write(&path, &file).unwrap();

    let editor = Editor::open(&name).unwrap();
    let error = editor.parse_assignment("service_name", "x").unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    assert!(
        error.to_string().contains("descriptor is corrupt"),
        "{error}"
    );
    // The table no longer describes the value: nothing of it is decoded or written by it.
    assert!(matches!(editor.value("tls"), Err(Error::Corrupt { .. })));
    let view = Inspector::open(&name).unwrap();
    let shown: Vec<String> = view
        .values(&view.read())
        .iter()
        .map(|(_, v)| v.to_string())
        .collect();
    assert_eq!(shown, ["?"]);
}

#[test]
fn a_write_killed_midway_does_not_count_until_its_rollback_publishes_once() {
    use shmstore_tests::Pair;
    let (name, _cleanup) = region("values-version-killed");
    let shm = Shm::<Pair>::create(&name, Pair { a: 1, b: 1 }).unwrap();
    shm.lock().unwrap().a = 2;
    let committed = shm.version();
    assert_eq!(committed, 1);
    let mut holder = helper!("hold-and-die", name, 100);
    holder.expect("written");
    // A write under way is not a version: readers still see version 1 and its value.
    assert_eq!(shm.version(), committed);
    assert_eq!(shm.read().a, 2);
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| shm.wait_for_change(committed, Some(Duration::from_secs(30))));
        drop(holder); // SIGKILL mid-write
                      // The next locker rolls the half-written value back, and that publishes once.
        let guard = shm.lock().expect("rolled back, not poisoned");
        assert_eq!((guard.a, guard.b), (2, 1));
        drop(guard);
        assert_eq!(waiter.join().unwrap().unwrap(), committed + 1);
    });
    assert_eq!(shm.version(), committed + 1);
    assert_eq!(shm.read().a, 2);
}

#[test]
fn a_path_given_as_text_is_refused_with_what_to_write_instead() {
    // `Shm::create("/path", v)`: text is a region name, and a name cannot hold a `/`. The
    // message must point at the file form rather than leave the user guessing.
    let dir = shmstore_tests::TempDir::new("values-path-as-text");
    let path = dir.join("config");
    let text = path.to_str().unwrap();
    let error = Shm::<u64>::create(text, 0).unwrap_err();
    let message = error.to_string();
    assert!(!path.exists());
    assert!(
        message.contains("Location::file") || message.contains("Path"),
        "{message}"
    );
    let error = Editor::open(text).unwrap_err().to_string();
    assert!(
        error.contains("Location::file") || error.contains("Path"),
        "{error}"
    );
}

#[test]
fn an_editor_refuses_a_region_another_user_owns_unless_allowed() {
    use shmstore_tests::is_root;
    if !is_root() {
        eprintln!("skipped: needs root to give the region to uid 65534");
        return;
    }
    let (name, place) = region("values-edit-other-owner");
    let _shm = Shm::<ServiceConfig>::options()
        .mode(0o666)
        .create(&name, ServiceConfig::example())
        .unwrap();
    // Another user's region (which that user can rewrite at will, descriptor included).
    std::os::unix::fs::chown(place.path().unwrap(), Some(65534), Some(65534)).unwrap();
    let error = Editor::open(&name).unwrap_err();
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
    assert!(error.to_string().contains("allow_other_owner"), "{error}");
    let editor = Editor::options()
        .allow_other_owner(true)
        .open(&name)
        .unwrap();
    editor
        .commit(&editor.parse_assignment("maintenance", "true").unwrap())
        .unwrap();
    assert_eq!(editor.value("maintenance").unwrap().to_string(), "true");
}
