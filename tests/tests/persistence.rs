//! File regions across a reboot: the value stays, the lock state from the old boot does not.
//!
//! A reboot is simulated the way the disk sees one: the file's bytes are copied while a writer
//! holds the lock in the middle of a write (its lock word, odd version and half-written value
//! all in the copy), and the boot id stored in the copy's header is rewritten to another
//! boot's. The holder's thread then ends, as every process does at a reboot.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::TryLockError;
use std::time::Duration;

use shmstore::{Location, QueueMode, Shm, ShmQueue};
use shmstore_tests::{flip_boot_id, Pair, TempDir, BOOT_ID, OLD};

/// The boot id of the running boot, as a region's header stores it.
fn current_boot_id() -> [u8; 16] {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let hex: Vec<u8> = text.trim().bytes().filter(u8::is_ascii_hexdigit).collect();
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    out
}

/// Writes `image` to `path` with the boot id of another boot (or leaves it, if `same_boot`).
fn restore(image: &[u8], path: &Path, same_boot: bool) {
    let mut image = image.to_vec();
    if !same_boot {
        flip_boot_id(&mut image);
    }
    std::fs::write(path, image).unwrap();
}

/// The bytes of the region at `path` taken while another thread holds its lock, having set
/// `a = 99` but not yet `b`. The holder then commits `Pair { a: 99, b: 99 }` in the original.
fn image_mid_write(shm: &Shm<Pair>, path: &Path) -> Vec<u8> {
    let (written_tx, written_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut g = shm.lock().unwrap();
            g.a = 99;
            written_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            g.b = 99;
        });
        written_rx.recv().unwrap();
        let image = std::fs::read(path).unwrap();
        go_tx.send(()).unwrap();
        image
    })
}

fn file_region(dir: &TempDir, file: &str, in_place: bool) -> (PathBuf, Shm<Pair>) {
    let path = dir.join(file);
    let shm = Shm::<Pair>::options()
        .in_place(in_place)
        .create(Location::path(&path), OLD)
        .unwrap();
    (path, shm)
}

#[test]
fn after_a_reboot_the_first_opener_resets_the_lock_and_rolls_back_the_interrupted_write() {
    let dir = TempDir::new("reboot");
    let (path, shm) = file_region(&dir, "original.shm", false);
    let image = image_mid_write(&shm, &path);
    assert_eq!(shm.read(), Pair { a: 99, b: 99 });

    // Control: in the same boot, the copied lock word still names the holder's thread (gone
    // now, and the copy is on nobody's robust list), so the lock cannot be taken.
    let same_boot = dir.join("same-boot.shm");
    restore(&image, &same_boot, true);
    let stale = Shm::<Pair>::open(Location::path(&same_boot)).unwrap();
    assert!(matches!(
        stale.lock_timeout(Duration::from_millis(100)),
        Err(TryLockError::WouldBlock)
    ));
    // Readers never needed the lock: the last committed value.
    assert_eq!(stale.read(), OLD);

    // After a reboot: the opener resets the lock, rolls the write back, keeps the value.
    let rebooted = dir.join("rebooted.shm");
    restore(&image, &rebooted, false);
    let shm2 = Shm::<Pair>::open(Location::path(&rebooted)).unwrap();
    assert_eq!(shm2.read(), OLD);
    let v = shm2.version();
    {
        let mut g = shm2
            .lock_timeout(Duration::from_secs(10))
            .expect("the lock from the old boot was reset");
        assert_eq!(*g, OLD, "the interrupted write was rolled back");
        g.a = 7;
        g.b = 8;
    }
    assert!(shm2.version() > v);
    assert_eq!(shm2.read(), Pair { a: 7, b: 8 });
    // The current boot id is stored: the next opener resets nothing.
    let bytes = std::fs::read(&rebooted).unwrap();
    assert_eq!(bytes[BOOT_ID], current_boot_id());
    let again = Shm::<Pair>::open(Location::path(&rebooted)).unwrap();
    assert_eq!(again.lock().unwrap().a, 7);
}

#[test]
fn after_a_reboot_an_interrupted_in_place_write_poisons() {
    let dir = TempDir::new("reboot-in-place");
    let (path, shm) = file_region(&dir, "original.shm", true);
    let image = image_mid_write(&shm, &path);

    let rebooted = dir.join("rebooted.shm");
    restore(&image, &rebooted, false);
    let shm2 = Shm::<Pair>::open(Location::path(&rebooted)).unwrap();
    assert!(
        shm2.is_poisoned(),
        "the reset repaired as the next locker would"
    );
    match shm2.lock_timeout(Duration::from_secs(10)) {
        Err(TryLockError::Poisoned(p)) => assert_eq!(*p.into_inner(), Pair { a: 99, b: 2 }),
        other => panic!(
            "expected the poisoned half write, got {:?}",
            other.map(|g| *g)
        ),
    }
    shm2.clear_poison();
    assert!(!shm2.is_poisoned());
}

#[test]
fn a_read_only_opener_after_a_reboot_reads_without_resetting() {
    let dir = TempDir::new("reboot-reader");
    let (path, shm) = file_region(&dir, "original.shm", false);
    let image = image_mid_write(&shm, &path);
    let rebooted = dir.join("rebooted.shm");
    restore(&image, &rebooted, false);

    let reader = Shm::<Pair>::open_reader(Location::path(&rebooted)).unwrap();
    assert_eq!(reader.location(), &Location::File(rebooted.clone()));
    assert_eq!(reader.read(), OLD);
    // A reader writes nothing: the next read-write opener still finds the old boot id.
    assert_ne!(
        std::fs::read(&rebooted).unwrap()[BOOT_ID],
        current_boot_id()
    );
    let writer = Shm::<Pair>::open(Location::path(&rebooted)).unwrap();
    assert_eq!(*writer.lock_timeout(Duration::from_secs(10)).unwrap(), OLD);
    assert_eq!(reader.read(), OLD);
}

/// FORMAT.md: the number of producers asleep on "not full", at offset 196 of a queue's control
/// block (which starts the payload).
const NOT_FULL_SLEEPERS: usize = 196;

fn not_full_sleepers(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    let at = u64::from_ne_bytes(bytes[32..40].try_into().unwrap()) as usize + NOT_FULL_SLEEPERS;
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn a_queue_keeps_its_elements_and_forgets_its_sleepers_across_a_reboot() {
    let dir = TempDir::new("reboot-queue");
    let path = dir.join("jobs.shm");
    let q = ShmQueue::<u64, 8>::options()
        .queue_mode(QueueMode::Mpmc)
        .create(Location::path(&path))
        .unwrap();
    for i in 0..8 {
        q.try_push(i).unwrap();
    }
    // A producer asleep in `push` on the full queue is counted in the file when the image is
    // taken; a pop then lets it finish.
    let image = std::thread::scope(|s| {
        let sleeper = s.spawn(|| {
            let q = ShmQueue::<u64, 8>::open(Location::path(&path)).unwrap();
            q.push(8)
        });
        while not_full_sleepers(&path) == 0 {
            std::thread::yield_now();
        }
        let image = std::fs::read(&path).unwrap();
        assert_eq!(q.try_pop().unwrap(), Some(0));
        sleeper.join().unwrap().unwrap();
        image
    });
    drop(q);

    let rebooted = dir.join("rebooted.shm");
    restore(&image, &rebooted, false);
    assert_eq!(
        not_full_sleepers(&rebooted),
        1,
        "the image counts the sleeper"
    );
    let q = ShmQueue::<u64, 8>::open(Location::path(&rebooted)).unwrap();
    assert_eq!(
        not_full_sleepers(&rebooted),
        0,
        "nobody sleeps after a reboot"
    );
    assert_eq!(q.mode(), QueueMode::Mpmc);
    let popped: Vec<u64> = std::iter::from_fn(|| q.try_pop().unwrap()).collect();
    assert_eq!(popped, (0..8).collect::<Vec<u64>>());
    q.try_push(9).unwrap();
    assert_eq!(q.try_pop().unwrap(), Some(9));

    // SPSC: the roles from the old boot are gone too.
    let spsc_path = dir.join("spsc.shm");
    let q = ShmQueue::<u64, 8>::options()
        .queue_mode(QueueMode::Spsc)
        .create(Location::path(&spsc_path))
        .unwrap();
    q.try_push(1).unwrap();
    let image = std::fs::read(&spsc_path).unwrap();
    let rebooted = dir.join("spsc-rebooted.shm");
    restore(&image, &rebooted, false);
    let q2 = ShmQueue::<u64, 8>::open(Location::path(&rebooted)).unwrap();
    assert_eq!(q2.has_other_producer().unwrap(), Some(false));
    assert_eq!(q2.try_pop().unwrap(), Some(1));
    q2.try_push(2).unwrap();
    assert_eq!(q2.try_pop().unwrap(), Some(2));
    drop(q);
}

#[test]
fn a_file_region_keeps_its_value_with_no_process_attached_and_flush_writes_it_out() {
    let dir = TempDir::new("persist");
    let path = dir.join("state.shm");
    {
        let shm = Shm::<Pair>::create(Location::path(&path), OLD).unwrap();
        {
            let mut g = shm.lock().unwrap();
            g.a = 40;
            g.b = 41;
        }
        shm.flush().unwrap();
    }
    // Nobody has it open or mapped now; the file holds the committed value.
    let bytes = std::fs::read(&path).unwrap();
    let payload_offset = u64::from_ne_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let a = u64::from_ne_bytes(
        bytes[payload_offset..payload_offset + 8]
            .try_into()
            .unwrap(),
    );
    assert_eq!(a, 40);
    let shm = Shm::<Pair>::open(Location::path(&path)).unwrap();
    assert_eq!(shm.read(), Pair { a: 40, b: 41 });
    assert_eq!(shm.location(), &Location::File(path.clone()));
    assert_eq!(shm.name(), path.display().to_string());
    // POSIX and System V regions live in memory: flush has nothing to do and succeeds.
    let name = shmstore_tests::unique_name("flush");
    let posix = Shm::<Pair>::options()
        .unlink_on_drop(true)
        .create(&name, OLD)
        .unwrap();
    posix.flush().unwrap();
}
