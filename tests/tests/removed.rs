//! `is_removed`: a handle learns that another process removed its region's name, file or key
//! (the writer left), in each backend, for `Shm`, `ShmReader` and `ShmQueue`; a new region
//! under the same location is not taken for the handle's own.

use std::process::Command;

use shmstore::{Shm, ShmQueue};
use shmstore_tests::{Backend, Place};

/// Removes the place's object from another process, as an operator or a departing writer would
/// (`rm` of the object's path, `ipcrm -M KEY` of a segment).
fn remove_from_another_process(place: &Place) {
    let status = match place.key() {
        Some(key) => Command::new("ipcrm")
            .arg("-M")
            .arg(key.to_string())
            .status(),
        None => Command::new("rm").arg(place.path().unwrap()).status(),
    }
    .expect("cannot run the removing command");
    assert!(status.success(), "removing {place} failed: {status}");
}

#[test]
fn a_handle_sees_its_region_removed_by_another_process_in_every_backend() {
    for backend in Backend::ALL {
        let place = Place::new(backend, "removed");
        let writer = Shm::<u64>::create(place.location().clone(), 7).unwrap();
        let reader = Shm::<u64>::open_reader(place.location().clone()).unwrap();
        assert!(!writer.is_removed().unwrap(), "{backend:?}");
        assert!(!reader.is_removed().unwrap(), "{backend:?}");

        remove_from_another_process(&place);
        assert!(writer.is_removed().unwrap(), "{backend:?}");
        assert!(reader.is_removed().unwrap(), "{backend:?}");
        assert_eq!(reader.read(), 7, "{backend:?}: the handle keeps its region");

        // A new region at the same location is another region.
        let next = Shm::<u64>::create(place.location().clone(), 8).unwrap();
        assert!(!next.is_removed().unwrap(), "{backend:?}");
        assert!(reader.is_removed().unwrap(), "{backend:?}");
        drop(next);
        shmstore::unlink(place.location().clone()).unwrap();
    }
}

#[test]
fn a_queue_handle_sees_its_queue_removed() {
    for backend in Backend::ALL {
        let place = Place::new(backend, "removed-queue");
        let queue = ShmQueue::<u64, 8>::create(place.location().clone()).unwrap();
        assert!(!queue.is_removed().unwrap(), "{backend:?}");
        remove_from_another_process(&place);
        assert!(queue.is_removed().unwrap(), "{backend:?}");
    }
}
