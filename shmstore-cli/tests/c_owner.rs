//! The generated C header's owner checks (issue 13, point 2, the C part): `shmstore_open`
//! refuses an object another user owns, `shmstore_check_sysv_owner` a segment whose owner or
//! creator is another user (a segment given away with `IPC_SET`), and
//! `-DSHMSTORE_ALLOW_OTHER_OWNER` accepts both, as `allow_other_owner(true)` does.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use shmstore::Shm;

/// `tests/c/check_owner.c` compiled in `dir` against the header of the region `name`, with
/// `SHMSTORE_ALLOW_OTHER_OWNER` defined if `allow`.
fn check_owner(dir: &Path, name: &str, allow: bool) -> PathBuf {
    let header = dir.join("region.h");
    run(&["header", name, "-o", header.to_str().unwrap()]).ok();
    let flags: &[&str] = if allow {
        &["-DSHMSTORE_ALLOW_OTHER_OWNER"]
    } else {
        &[]
    };
    let out = dir.join(if allow {
        "check_owner_allow"
    } else {
        "check_owner"
    });
    compile_c_with(&c_dir().join("check_owner.c"), dir, &out, flags)
        .unwrap_or_else(|e| panic!("check_owner.c does not compile:\n{e}"))
}

/// What `program ARGS…` printed, trimmed; panics if it failed.
fn says(program: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

const REFUSED: &str =
    "owned or created by another user: refused unless compiled with -DSHMSTORE_ALLOW_OTHER_OWNER";

#[test]
fn shmstore_open_refuses_a_region_another_user_owns_unless_allowed() {
    let (name, _cleanup) = region("c-owner");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let dir = TempDir::new("c-owner");
    let strict = check_owner(dir.path(), &name, false);
    let allowing = check_owner(dir.path(), &name, true);
    assert_eq!(says(&strict, &["posix", &name]), "ok");

    // Another user's now (as if planted by uid 65534).
    std::os::unix::fs::chown(Path::new(SHM_DIR).join(&name), Some(65534), None).unwrap();
    assert_eq!(says(&strict, &["posix", &name]), REFUSED);
    assert_eq!(says(&allowing, &["posix", &name]), "ok");
}

#[test]
fn a_system_v_segment_given_away_with_ipc_set_is_refused_unless_allowed() {
    let (_shm, own) = sysv_region(sample());
    let dir = TempDir::new("c-owner-sysv");
    let strict = check_owner(dir.path(), &own.to_string(), false);
    let allowing = check_owner(dir.path(), &own.to_string(), true);
    let key_text = |key: i32| format!("{:#x}", key as u32);
    assert_eq!(
        says(&strict, &["sysv", &key_text(own.key().unwrap())]),
        "ok"
    );

    // Created by uid 65534 and given to root: the owner is root, the creator is not.
    let planter = compile_c(
        &c_dir().join("planted_segment.c"),
        dir.path(),
        &dir.path().join("planted_segment"),
    )
    .unwrap_or_else(|e| panic!("planted_segment.c does not compile:\n{e}"));
    let planted = (0..64)
        .find_map(|_| {
            let key = fresh_sysv_key();
            let status = std::process::Command::new(&planter)
                .arg(key_text(key))
                .status()
                .unwrap();
            match status.code() {
                Some(0) => Some(Place::adopt_key(key)),
                Some(3) => None, // the key is taken
                _ => panic!("planted_segment failed: {status}"),
            }
        })
        .expect("64 candidate System V keys were all taken");
    assert_eq!(
        says(&strict, &["sysv", &key_text(planted.key().unwrap())]),
        REFUSED
    );
    assert_eq!(
        says(&allowing, &["sysv", &key_text(planted.key().unwrap())]),
        "ok"
    );
}
