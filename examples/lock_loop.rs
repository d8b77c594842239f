//! Counts what one operation costs, for an instruction counter: `N` times lock, write 8 bytes
//! and unlock (`lock`), or `N` reads (`read`), of a 16-byte value, in a process that has
//! started a second thread (as `benches/` do). Run twice with two `N` under callgrind and divide the
//! difference of the totals by the difference of the `N`: the instructions one operation takes,
//! a figure that, unlike a time, does not move with the machine's load (README, "Benchmarks").
//!
//! ```text
//! cargo build --release -p shmstore-examples --example lock_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/lock_loop lock 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/lock_loop lock 200000
//! ```

use shmstore::{Shm, ShmType};

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Small {
    a: u64,
    b: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // glibc takes single-thread shortcuts until a process has a second thread.
    let _second = std::thread::spawn(std::thread::park);
    let mut args = std::env::args().skip(1);
    let (Some(operation), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: lock_loop lock|read N".into());
    };
    let count: u64 = count.parse()?;
    let name = format!("shmstore-lock-loop-{}", std::process::id());
    let shm = Shm::<Small>::options()
        .unlink_on_drop(true)
        .create(&name, Small { a: 0, b: 0 })?;
    let mut sum = 0u64;
    match operation.as_str() {
        "lock" => (0..count).for_each(|_| shm.lock().unwrap().a += 1),
        "read" => {
            (0..count).for_each(|_| sum = sum.wrapping_add(std::hint::black_box(shm.read()).a))
        }
        other => return Err(format!("unknown operation `{other}`: lock or read").into()),
    }
    std::hint::black_box(sum);
    Ok(())
}
