//! Opening an existing 4 KiB region against the raw calls (DESIGN §11), measured in one run:
//! `cargo bench -p shmstore --bench open`.
//!
//! `Shm::<[u8; 4096]>::open` + drop (which unmaps and closes) next to `shm_open` + `fstat` +
//! `mmap` + `munmap` + `close` of the same object, and, for reference, the same raw calls with
//! a read of the first word (an opener has to look at the header, which faults the page in).

mod common;

use std::ffi::CString;
use std::hint::black_box;
use std::time::Duration;

use common::{bench_name, Regions};
use criterion::Criterion;
use nix::libc;
use shmstore::Shm;

type Page = [u8; 4096];

/// Raw open of `/name`: `shm_open`, `fstat`, `mmap` of the whole object, then `munmap` and
/// `close`; with `touch`, reads the first word in between.
#[inline(never)]
fn raw_open(name: &CString, touch: bool) -> u64 {
    // SAFETY: `name` is a valid C string; the descriptor is checked below.
    let fd = unsafe {
        libc::shm_open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0,
        )
    };
    assert!(fd >= 0);
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open; fstat writes one `stat` into `st`.
    assert_eq!(unsafe { libc::fstat(fd, st.as_mut_ptr()) }, 0);
    // SAFETY: fstat succeeded, so it initialised `st`.
    let len = unsafe { st.assume_init() }.st_size as usize;
    // SAFETY: a new shared mapping of the object at an address the kernel picks (nothing is
    // replaced); checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let first = if touch {
        // SAFETY: the object is `len ≥ 8` bytes long (a 4 KiB region), so its first word is
        // inside the page-aligned mapping.
        unsafe { std::ptr::read_volatile(p.cast::<u64>()) }
    } else {
        0
    };
    // SAFETY: `p..p + len` is the mapping made above, used by nothing after this.
    unsafe { libc::munmap(p, len) };
    // SAFETY: `fd` is ours and used by nothing after this.
    unsafe { libc::close(fd) };
    first
}

fn benches(c: &mut Criterion) {
    let names = Regions(vec![bench_name("open")]);
    let name = names.0[0].as_str();
    let _region = Shm::<Page>::create(name, [1; 4096]).unwrap();
    let os_name = CString::new(format!("/{name}")).unwrap();

    let mut g = c.benchmark_group("open existing 4 KiB region");
    g.measurement_time(Duration::from_secs(3)).sample_size(30);
    g.bench_function("raw shm_open+fstat+mmap+munmap+close", |b| {
        b.iter(|| raw_open(black_box(&os_name), false))
    });
    g.bench_function("raw shm_open+fstat+mmap+read+munmap+close", |b| {
        b.iter(|| raw_open(black_box(&os_name), true))
    });
    g.bench_function("Shm::open + drop", |b| {
        b.iter(|| drop(black_box(Shm::<Page>::open(black_box(name)).unwrap())))
    });
    g.bench_function("Shm::open_reader + drop", |b| {
        b.iter(|| {
            drop(black_box(
                Shm::<Page>::open_reader(black_box(name)).unwrap(),
            ))
        })
    });
    g.finish();
    drop(names);
}

fn main() {
    common::start_second_thread();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
