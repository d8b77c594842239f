//! Replays every saved fuzzing input in `fuzz/corpus/<target>/` through the functions the
//! cargo-fuzz targets call, on stable and without libFuzzer, as part of `cargo test
//! --workspace` (this package enables shmstore's `fuzzing` feature). Seeds are `seed-*`;
//! crashes the fuzzer found, once fixed, stay as `regression-*`. New crashes in
//! `fuzz/artifacts/<target>/` replay with `--ignored artifacts`.

use std::path::{Path, PathBuf};

use shmstore::fuzzing;

mod types {
    #![allow(dead_code, missing_docs)]
    include!("../../fuzz/roundtrip_types.rs");
}

/// The saved inputs of `target` in `fuzz/<dir>/<target>/`, sorted.
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir)
        .join(target);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(path) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("readable directory").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("readable input");
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

/// A fuzz target's entry point.
type Target = fn(&[u8]);

fn replay(target: &str, run: Target) {
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "no seed inputs for `{target}`");
    for (path, bytes) in corpus {
        eprintln!("{target}: {}", path.display());
        run(&bytes);
    }
}

/// The crashes in `fuzz/artifacts/` (not committed: the root `.gitignore` lists the directory),
/// to check a fix: `cargo test -p shmstore --features fuzzing --test fuzz_corpus -- --ignored
/// artifacts`.
#[test]
#[ignore = "replays unfixed crashes"]
fn artifacts() {
    let targets: [(&str, Target); 6] = [
        ("header", fuzzing::check_header_bytes),
        ("descriptor", fuzzing::decode_descriptor),
        ("open", fuzzing::open_arbitrary_object),
        ("queue", fuzzing::queue_ops),
        ("roundtrip", types::roundtrip_all),
        ("list", fuzzing::list_arbitrary_objects),
    ];
    for (target, run) in targets {
        for (path, bytes) in inputs("artifacts", target) {
            eprintln!("{target}: {}", path.display());
            run(&bytes);
        }
    }
}

/// Found by the `open` target: a region whose `version` word is `u64::MAX` (odd: "a write in
/// progress") made the next lock's repair compute `version + 1`, which overflowed: a panic in
/// builds with overflow checks, inside `Shm::lock`. The version now wraps (to an even 0).
#[test]
fn a_corrupt_version_word_cannot_make_lock_overflow() {
    use std::io::{Seek, SeekFrom, Write};

    let name = format!("shmstore-test-fuzz-version-overflow-{}", std::process::id());
    let shm = shmstore::Shm::<u64>::options()
        .unlink_on_drop(true)
        .create(&name, 1)
        .unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.seek(SeekFrom::Start(128)).unwrap(); // `version`, FORMAT.md
    file.write_all(&u64::MAX.to_ne_bytes()).unwrap();
    drop(file);
    // The odd version reads as a dead writer's: rolled back, published as 0.
    assert_eq!(*shm.lock().unwrap(), 1);
    assert_eq!(shm.read(), 1);
    assert_eq!(shm.version(), 0);
}

#[test]
fn header() {
    replay("header", fuzzing::check_header_bytes);
}

#[test]
fn descriptor() {
    replay("descriptor", fuzzing::decode_descriptor);
}

#[test]
fn open() {
    replay("open", fuzzing::open_arbitrary_object);
}

#[test]
fn queue() {
    replay("queue", fuzzing::queue_ops);
}

#[test]
fn roundtrip() {
    replay("roundtrip", types::roundtrip_all);
}

#[test]
fn list() {
    replay("list", fuzzing::list_arbitrary_objects);
}

#[test]
fn truncate() {
    replay("truncate", fuzzing::truncate_while_operating);
}

#[test]
fn channel_records() {
    replay("channel_records", fuzzing::channel_records);
}

/// The headers the other targets' seeds start from are accepted ones: a real region's bytes
/// go through `check_header_bytes`' layout assertions, not only its early returns.
#[test]
fn plain_inputs() {
    fuzzing::check_header_bytes(&[]);
    fuzzing::decode_descriptor(&[]);
    fuzzing::open_arbitrary_object(&[]);
    fuzzing::queue_ops(&[1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 1, 1, 1, 1, 1, 1, 4, 5]);
    types::roundtrip_all(&[0xa5; 300]);
}

/// Writes the seed corpus (`fuzz/corpus/<target>/seed-*`) from real regions. Run once, by hand,
/// after a format change:
/// `cargo test -p shmstore --features fuzzing --test fuzz_corpus -- --ignored generate_seeds`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn generate_seeds() {
    use shmstore::{QueueMode, Shm, ShmQueue};

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let save = |target: &str, file: &str, bytes: &[u8]| {
        assert!(bytes.len() < 8192, "{file}: seeds stay small");
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{file}")), bytes).unwrap();
    };
    let object = |name: &str| std::fs::read(format!("/dev/shm/{name}")).unwrap();
    let pid = std::process::id();
    let mut regions: Vec<(&str, Vec<u8>)> = Vec::new();
    {
        let name = format!("fuzz-seed-{pid}-value");
        let _shm = Shm::<[u64; 4]>::options()
            .unlink_on_drop(true)
            .create(&name, [1, 2, 3, 4])
            .unwrap();
        regions.push(("value-u64x4", object(&name)));
    }
    {
        let name = format!("fuzz-seed-{pid}-in-place");
        let _shm = Shm::<[u64; 4]>::options()
            .unlink_on_drop(true)
            .in_place(true)
            .notify_readers(true)
            .create(&name, [5, 6, 7, 8])
            .unwrap();
        regions.push(("value-u64x4-in-place", object(&name)));
    }
    {
        let name = format!("fuzz-seed-{pid}-robot");
        let _shm = Shm::<types::Robot>::options()
            .unlink_on_drop(true)
            .create_with(&name, |_zeroed| {})
            .unwrap();
        regions.push(("value-robot", object(&name)));
    }
    for (mode, file) in [
        (QueueMode::Mpmc, "queue-mpmc"),
        (QueueMode::Spsc, "queue-spsc"),
    ] {
        let name = format!("fuzz-seed-{pid}-{file}");
        let q = ShmQueue::<u64, 8>::options()
            .queue_mode(mode)
            .unlink_on_drop(true)
            .create(&name)
            .unwrap();
        q.try_push(11).unwrap();
        q.try_push(12).unwrap();
        regions.push((file, object(&name)));
    }
    for (file, bytes) in &regions {
        save("header", file, bytes);
        save("open", file, bytes);
        let descriptor_len = u64::from_ne_bytes(bytes[72..80].try_into().unwrap()) as usize;
        save("descriptor", file, &bytes[256..256 + descriptor_len]);
    }
    // Not ready: state 1 (initialising, abandoned), and a blank header.
    let mut initialising = regions[0].1.clone();
    initialising[16..20].copy_from_slice(&1u32.to_ne_bytes());
    save("header", "initialising", &initialising);
    save("open", "initialising", &initialising);
    save("open", "blank", &[0; 256]);
    // Truncated: the header promises more bytes than the object has.
    let truncated = &regions[0].1[..regions[0].1.len() - 8];
    save("header", "truncated", truncated);
    save("open", "truncated", truncated);

    save(
        "queue",
        "mpmc-fill-drain",
        &[0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 1, 1, 1, 1, 2],
    );
    save(
        "queue",
        "spsc-reopen-close",
        &[1, 0, 0, 4, 1, 0, 3, 0, 2, 1, 1, 1, 5],
    );
    save(
        "queue",
        "mpmc-close-full",
        &[2, 6, 12, 18, 24, 30, 36, 3, 0, 5, 4, 1, 1],
    );

    save("roundtrip", "zeros", &[0; 256]);
    save("roundtrip", "ones", &[0xff; 256]);
    let counting: Vec<u8> = (0..=255).collect();
    save("roundtrip", "counting", &counting);
}

/// Found by the `open` target: an in-place region whose `commit_in_progress` word (used only
/// by the default mode) is non-zero. Every lock then "repaired" it: poisoned it and published
/// `version + 1` without clearing the flag, so an even version became odd and read-only
/// readers waited for an even version forever. The in-place repair now clears the flag and
/// poisons only for an odd version.
#[test]
fn a_stray_commit_flag_does_not_poison_an_in_place_region() {
    use std::io::{Seek, SeekFrom, Write};
    use std::time::Duration;

    let name = format!("shmstore-test-fuzz-in-place-commit-{}", std::process::id());
    let shm = shmstore::Shm::<u64>::options()
        .in_place(true)
        .unlink_on_drop(true)
        .create(&name, 1)
        .unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.seek(SeekFrom::Start(144)).unwrap(); // `commit_in_progress`, FORMAT.md
    file.write_all(&1u32.to_ne_bytes()).unwrap();
    drop(file);
    let before = shm.version();
    drop(shm.lock()); // nothing written
    let reader = shmstore::Shm::<u64>::open_reader(&name).unwrap();
    let read = reader.read_timeout(Duration::from_millis(200));
    assert!(
        read.is_ok() && !reader.is_poisoned(),
        "version {before} -> {}, poisoned {}, read {read:?}",
        shm.version(),
        reader.is_poisoned()
    );
}
