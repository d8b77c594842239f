//! The owner check of System V segments cannot be sidestepped (issue 13, point 2): a segment
//! that another user created and then handed over with `shmctl(IPC_SET)` belongs to this user
//! by its `uid`, but its creator (`cuid`) still controls it, and chose what is in it.

use shmstore::{Error, Shm};
use shmstore_tests::{assert_mentions, helper, is_root, Backend, Counter, Place};

/// uid 65534 creates a segment and gives it to root: root's `open` refuses it, naming the
/// creator, unless it passes `allow_other_owner(true)`.
#[test]
fn a_segment_another_user_created_and_gave_away_is_refused() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let place = Place::new(Backend::SysV, "given");
    assert_eq!(helper!("setuid-give-sysv", place).finish_ok(), ["given"]);

    for opened in [
        Shm::<Counter>::open(place.location()).map(drop),
        Shm::<Counter>::open_or_create(place.location(), || Counter::at(1)).map(drop),
        Shm::<Counter>::open_reader(place.location()).map(drop),
    ] {
        let e = opened.expect_err("a segment created by uid 65534 was accepted");
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
        assert_mentions(
            &e,
            &["created by uid 65534", "IPC_SET", "allow_other_owner"],
        );
    }

    let shm = Shm::<Counter>::options()
        .allow_other_owner(true)
        .open(place.location())
        .expect("allow_other_owner accepts it");
    assert_eq!(shm.read(), Counter::at(7));
}
