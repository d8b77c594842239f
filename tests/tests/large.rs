//! Large values: the region's type descriptor must not grow with array lengths.

use shmstore::{Shm, ShmType};
use shmstore_tests::region;

#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pos {
    x: f32,
    y: f32,
}

const N: usize = 300_000;

/// Bug: an array of structs was described element by element, too big for `open` to accept.
///
/// Regression: arrays of structs were described element by element, so a 2.4 MB
/// `[Pos; 300_000]` got a 20 MB descriptor, beyond the 16 MiB that `open` accepts, and the
/// region its own creator made could not be opened again (`Error::Corrupt`).
#[test]
fn regression_a_large_array_of_structs_got_a_descriptor_too_big_to_open() {
    let (name, _cleanup) = region("large-array");
    // The values are passed by value; give them room.
    let run = move || {
        let mut start = [Pos { x: 0.0, y: 0.0 }; N];
        start[N - 1] = Pos { x: 1.5, y: -2.5 };
        let created = Shm::<[Pos; N]>::create(&name, start).unwrap();
        let opened = Shm::<[Pos; N]>::open(&name).unwrap();
        opened.lock().unwrap()[7].y = 3.0;
        let seen = created.read();
        assert_eq!(seen[7], Pos { x: 0.0, y: 3.0 });
        assert_eq!(seen[N - 1], Pos { x: 1.5, y: -2.5 });
        let size = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().len();
        // Two copies of 2.4 MB, a header and a descriptor of a few hundred bytes.
        assert!(size < 2 * 8 * N as u64 + 4096, "the object is {size} bytes");
    };
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

/// `open_or_create_with` hands `init` a zeroed value even when it re-initialises an abandoned
/// object whose payload bytes still hold someone else's data.
#[test]
fn open_or_create_with_zeroes_a_reinitialised_payload() {
    let (name, _cleanup) = region("create-with-stale");
    // An unfinished region (state 1, "initialising", and no creator holds its flock) whose
    // payload holds stale bytes. (A zero header over other bytes is not blank: it is left
    // alone, see tests/creation.rs.)
    drop(
        Shm::<[u64; 1000]>::options()
            .create_with(&name, |value| value.fill(0xABAB_ABAB_ABAB_ABAB))
            .unwrap(),
    );
    let path = format!("/dev/shm/{name}");
    let mut stale = std::fs::read(&path).unwrap();
    stale[16..20].copy_from_slice(&1u32.to_ne_bytes());
    std::fs::write(&path, &stale).unwrap();

    let mut saw_only_zeros = false;
    let shm = Shm::<[u64; 1000]>::options()
        .open_or_create_with(&name, |value| {
            saw_only_zeros = value.iter().all(|&w| w == 0);
            value[999] = 7;
        })
        .unwrap();
    assert!(saw_only_zeros, "init saw stale bytes");
    let read = shm.read();
    assert_eq!(read[999], 7);
    assert!(read[..999].iter().all(|&w| w == 0));
}
