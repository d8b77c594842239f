//! A file region named without a `/` (`shmstore get state.shm` in its directory) is taken
//! for a name in `/dev/shm`, as documented: the refusal says how to write it as a path.

mod common;

use common::*;
use shmstore::{Location, Shm};

#[test]
fn a_file_region_named_without_a_slash_gets_the_path_to_type() {
    let dir = TempDir::new("file-hint");
    let shm = Shm::<u64>::create(Location::path(dir.join("state.shm")), 3).unwrap();
    let ran = run_in(dir.path(), &["get", "state.shm"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("write a path, `./state.shm`"),
        "{}",
        ran.stderr
    );
    // Written as a path, it reads.
    assert_eq!(
        run_in(dir.path(), &["get", "./state.shm"]).ok().stdout,
        "3\n"
    );
    // Without such a file, the message is the library's alone.
    let ran = run_in(dir.path(), &["get", "no-such-region-here"]);
    assert!(!ran.stderr.contains("write a path"), "{}", ran.stderr);
    drop(shm);
}
