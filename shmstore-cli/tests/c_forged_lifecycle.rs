//! Issue 16, red team, C side: a peer stores `lifecycle = 2` (MOVED) in a region whose name
//! still refers to it (FORMAT.md, "Migration": a 2 on the object the name refers to is no
//! move). The C helpers must not answer `SHMSTORE_E_MOVED` for ever: a C program that reopens
//! on that answer, as `shmstore_lock`'s documentation shows, would get the same object and the
//! same answer again without end.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use shmstore::Shm;

#[test]
fn child_process_entry() {
    child_action();
}

/// `tests/c/follow_migration.c` compiled against the header of `name`, started on `name`.
fn follower(name: &str, dir: &Path) -> shmstore_tests::Helper {
    let header = dir.join("region.h");
    run(&["header", name, "-o", header.to_str().unwrap()]).ok();
    let program = compile_c(
        &c_dir().join("follow_migration.c"),
        dir,
        &dir.join("follower"),
    )
    .unwrap_or_else(|errors| panic!("follow_migration.c does not compile:\n{errors}"));
    shmstore_tests::Helper::spawn(program.to_str().unwrap(), &[name.to_string()])
}

#[test]
fn a_c_peer_of_a_region_with_a_forged_moved_word_goes_on_with_it() {
    let (name, _cleanup) = region("c-forged-moved");
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let object = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(Path::new(SHM_DIR).join(&name))
        .unwrap();
    let dir = TempDir::new("c-forged-moved");
    let mut c = follower(&name, dir.path());
    c.expect("open ok");
    object.write_all_at(&2u32.to_ne_bytes(), 156).unwrap();

    c.send("read");
    c.expect(&format!("read ok first={}", sample().counter));
    c.send("lock");
    c.expect("lock ok");
    assert_eq!(shm.read().counter, sample().counter + 1);
    let mut word = [0u8; 4];
    object.read_exact_at(&mut word, 156).unwrap();
    assert_eq!(
        u32::from_ne_bytes(word),
        0,
        "the C locker, holding the lock, put the forged word back to CURRENT"
    );
}
