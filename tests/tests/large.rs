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

/// Regression: arrays of structs were described element by element, so a 2.4 MB
/// `[Pos; 300_000]` got a 20 MB descriptor, beyond the 16 MiB that `open` accepts, and the
/// region its own creator made could not be opened again (`Error::Corrupt`).
#[test]
fn a_large_array_of_structs_round_trips_through_open() {
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
