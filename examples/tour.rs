//! A tour of shmstore with real processes: `cargo run --release --example tour`.
//!
//! Two accounts hold 2000 between them. Worker processes move money back and forth under the
//! region's lock while this process takes lock-free snapshots and checks that the total never
//! changes. Then a process is SIGKILLed halfway through a transfer: its half-done write never
//! becomes visible, and the next locker finds the old balances (the default, crash-atomic mode).
//! The same crash in an `in_place` region poisons it instead: every process sees the poison
//! until someone repairs the value and clears it. Then a read-only process watches the value
//! change, sleeping until each update is published. Finally one process writes text and an
//! enum (shmstore's field types) that another reads back, checked.
//!
//! The program re-runs itself for the child roles (`tour worker NAME N`, `tour crasher NAME`,
//! `tour observer NAME`, `tour watcher NAME N`, `tour announcer NAME`) and removes the regions
//! it created.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::value::{EnumField, FixedStr};
use shmstore::{Shm, ShmEnum, ShmType, Store};

/// The shared value: two balances that must always add up to `TOTAL`.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Accounts {
    alice: i64,
    bob: i64,
    transfers: u64,
}

/// Where the bank is in its day: an enum stored as its `u8` discriminant, checked when read.
#[derive(ShmEnum, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Phase {
    Open,
    Closing,
    Closed,
}

/// A status another process announces: text and an enum, with no hand-made encoding (and no
/// padding: the derive checks it).
#[derive(ShmType, Clone, Copy, Debug)]
#[repr(C)]
#[shm(default_zeroed)]
struct Status {
    note: FixedStr<60>, // UTF-8, at most 60 bytes
    phase: EnumField<Phase>,
}

const TOTAL: i64 = 2000;
const WORKERS: usize = 3;
const TRANSFERS_PER_WORKER: u64 = 100_000;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["worker", name, n] => worker(name, n.parse()?),
        ["crasher", name] => crasher(name),
        ["observer", name] => observer(name),
        ["watcher", name, n] => watcher(name, n.parse()?),
        ["announcer", name] => announcer(name),
        [] => tour(),
        _ => Err(
            "usage: tour [worker NAME N | crasher NAME | observer NAME | watcher NAME N | \
             announcer NAME]"
                .into(),
        ),
    }
}

fn tour() -> Result {
    // The tour's regions live in one namespace, removed together however the tour ends.
    let store = Store::new(&format!("shmstore-tour-{}", std::process::id()))?;
    let _cleanup = Cleanup(store.clone());
    let name = store.name_of("accounts")?;
    let in_place_name = store.name_of("ledger")?;
    let status_name = store.name_of("status")?;

    say("parent", "== 1. several processes share one value ==");
    let start = Accounts {
        alice: TOTAL / 2,
        bob: TOTAL / 2,
        transfers: 0,
    };
    // notify_readers: read-only watchers (act 4) are woken by every publish.
    let accounts = Shm::<Accounts>::options()
        .unlink_on_drop(true)
        .notify_readers(true)
        .create(&name, start)?;
    say(
        "parent",
        &format!("created region `{name}`: {:?}", accounts.read()),
    );
    say(
        "parent",
        &format!("its layout, checked by every opener:\n{}", Accounts::LAYOUT),
    );

    say(
        "parent",
        &format!(
            "starting {WORKERS} worker processes, {TRANSFERS_PER_WORKER} transfers each; \
             reading snapshots without the lock meanwhile"
        ),
    );
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|_| spawn(&["worker", &name, &TRANSFERS_PER_WORKER.to_string()]))
        .collect::<std::io::Result<_>>()?;
    let mut snapshots = 0u64;
    while workers.iter_mut().any(|w| matches!(w.try_wait(), Ok(None))) {
        for _ in 0..1000 {
            let now = accounts.read();
            assert_eq!(
                now.alice + now.bob,
                TOTAL,
                "a snapshot saw half a transfer: {now:?}"
            );
        }
        snapshots += 1000;
    }
    for mut w in workers {
        if !w.wait()?.success() {
            return Err("a worker failed".into());
        }
    }
    let end = accounts.read();
    say(
        "parent",
        &format!(
            "{snapshots} snapshots while they ran: every one had alice + bob = {TOTAL}; \
             final {end:?} after {} transfers, version {}",
            end.transfers,
            accounts.version()
        ),
    );
    assert_eq!(end.transfers, WORKERS as u64 * TRANSFERS_PER_WORKER);

    say(
        "parent",
        "== 2. a process is killed halfway through a transfer (crash-atomic mode) ==",
    );
    let before = accounts.read();
    let version_before = accounts.version();
    let mut crasher = spawn_and_wait_for(&["crasher", &name], "half-written")?;
    let during = accounts.read();
    say(
        "parent",
        &format!("while it holds the lock, readers still see the committed value: {during:?}"),
    );
    assert_eq!(during, before);
    kill(Pid::from_raw(crasher.id() as i32), Signal::SIGKILL)?;
    crasher.wait()?;
    say(
        "parent",
        "sent SIGKILL to the crasher, which never committed",
    );
    let guard = accounts
        .lock()
        .map_err(|_| "the default mode is never poisoned")?;
    say(
        "parent",
        &format!(
            "lock() after the owner died is Ok and finds the old balances: {:?}",
            *guard
        ),
    );
    assert_eq!(*guard, before);
    drop(guard);
    say(
        "parent",
        &format!(
            "the rollback published a new version ({version_before} -> {}) with the same value",
            accounts.version()
        ),
    );

    say(
        "parent",
        "== 3. the same crash in an in_place region poisons it ==",
    );
    let ledger = Shm::<Accounts>::options()
        .in_place(true)
        .unlink_on_drop(true)
        .create(&in_place_name, start)?;
    let mut crasher = spawn_and_wait_for(&["crasher", &in_place_name], "half-written")?;
    kill(Pid::from_raw(crasher.id() as i32), Signal::SIGKILL)?;
    crasher.wait()?;
    say(
        "parent",
        "sent SIGKILL to the crasher halfway through its write",
    );
    match ledger.lock() {
        Ok(_) => return Err("an in-place region must be poisoned by a dead writer".into()),
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            say(
                "parent",
                &format!(
                    "lock() returns Err(PoisonError); the half-done write is there: {:?} \
                     (alice + bob = {})",
                    *guard,
                    guard.alice + guard.bob
                ),
            );
            observe(&in_place_name)?;
            guard.bob = TOTAL - guard.alice;
            say("parent", &format!("repaired the value: {:?}", *guard));
        }
    }
    ledger.clear_poison();
    say("parent", "cleared the poison");
    observe(&in_place_name)?;

    say(
        "parent",
        "== 4. another process watches the value change, sleeping in between ==",
    );
    let watcher = spawn_and_wait_for(&["watcher", &name, "3"], "watching")?;
    for (alice, bob) in [(1200, 800), (300, 1700), (1000, 1000)] {
        std::thread::sleep(Duration::from_millis(200));
        let mut g = accounts
            .lock()
            .map_err(|_| "the default mode is never poisoned")?;
        g.alice = alice;
        g.bob = bob;
        drop(g);
        say("parent", &format!("set alice = {alice}, bob = {bob}"));
    }
    let mut watcher = watcher;
    if !watcher.wait()?.success() {
        return Err("the watcher failed".into());
    }

    say(
        "parent",
        "== 5. text and an enum, written by one process and read by another ==",
    );
    let status = Shm::<Status>::options()
        .unlink_on_drop(true)
        .create(&status_name, Status::default())?;
    let seen = status.version();
    if !spawn(&["announcer", &status_name])?.wait()?.success() {
        return Err("the announcer failed".into());
    }
    status.wait_for_change(seen, Some(Duration::from_secs(10)))?;
    let announced = status.read();
    // Each read is checked: a peer that wrote a length above 60, bytes that are not UTF-8 or
    // a phase this build does not know gets an error here, never a panic or a wild read.
    let (note, phase) = (announced.note.as_str()?, announced.phase.get()?);
    say(
        "parent",
        &format!(
            "read phase {phase:?} and note {note:?} (version {})",
            status.version()
        ),
    );
    assert_eq!(phase, Phase::Closing);
    let mut too_long = Status::default();
    if let Err(refused) = too_long.note.set(&"a note far too long ".repeat(4)) {
        say(
            "parent",
            &format!("text that does not fit is refused: {refused}"),
        );
    }

    say(
        "parent",
        &format!(
            "the tour's namespace `{}` holds {} regions",
            store.prefix(),
            store.list()?.len()
        ),
    );
    drop(accounts);
    drop(ledger);
    drop(status);
    say(
        "parent",
        "== done: every region removed (unlink_on_drop); `ls /dev/shm` shows nothing of ours ==",
    );
    Ok(())
}

/// Child: transfers money back and forth under the lock.
fn worker(name: &str, transfers: u64) -> Result {
    let accounts = Shm::<Accounts>::open(name)?;
    for i in 0..transfers {
        let mut g = accounts.lock().map_err(|_| "poisoned")?;
        let amount = (i % 7) as i64 + 1;
        if i % 2 == 0 {
            g.alice -= amount;
            g.bob += amount;
        } else {
            g.bob -= amount;
            g.alice += amount;
        }
        g.transfers += 1;
    }
    say("worker", &format!("done, {transfers} transfers"));
    Ok(())
}

/// Child: takes 500 from alice, announces it, and waits to be killed before crediting bob.
fn crasher(name: &str) -> Result {
    let accounts = Shm::<Accounts>::open(name)?;
    let mut g = match accounts.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    g.alice -= 500;
    say(
        "crasher",
        "took 500 from alice and is about to credit bob... half-written",
    );
    std::thread::sleep(Duration::from_secs(60));
    g.bob += 500;
    Ok(())
}

/// Child: prints what another process sees of the poison flag.
fn observer(name: &str) -> Result {
    let accounts = Shm::<Accounts>::open(name)?;
    say(
        "observer",
        &format!("is_poisoned() = {}", accounts.is_poisoned()),
    );
    Ok(())
}

/// Child: a read-only handle that prints each new version, sleeping on the region's futex in
/// between (no polling), until it has seen `changes` of them.
fn watcher(name: &str, changes: u32) -> Result {
    let accounts = Shm::<Accounts>::open_reader(name)?;
    let mut seen = accounts.version();
    say("watcher", &format!("watching from version {seen}"));
    for _ in 0..changes {
        seen = accounts.wait_for_change(seen, Some(Duration::from_secs(10)))?;
        let now = accounts.read();
        say(
            "watcher",
            &format!(
                "woke for version {seen}: alice = {}, bob = {}",
                now.alice, now.bob
            ),
        );
    }
    Ok(())
}

/// Child: announces that the bank is closing, as text and an enum, in one commit.
fn announcer(name: &str) -> Result {
    let status = Shm::<Status>::open(name)?;
    let mut g = status.lock().map_err(|_| "poisoned")?;
    g.note.set("closing: every transfer settled")?; // refused if over 60 bytes
    g.phase.set(Phase::Closing);
    drop(g);
    say(
        "writer",
        &format!(
            "wrote phase Closing and a note (version {})",
            status.version()
        ),
    );
    Ok(())
}

fn observe(name: &str) -> Result {
    let status = spawn(&["observer", name])?.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err("the observer failed".into())
    }
}

fn spawn(args: &[&str]) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?).args(args).spawn()
}

/// Spawns a child and returns once it has printed a line containing `marker`; its output keeps
/// flowing to ours.
fn spawn_and_wait_for(args: &[&str], marker: &str) -> Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (found, seen) = std::sync::mpsc::channel();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::io::Result::ok)
        {
            println!("{line}");
            if line.contains(&marker) {
                let _ = found.send(());
            }
        }
    });
    match seen.recv() {
        Ok(()) => Ok(child),
        Err(_) => Err("the child exited before reaching its mark".into()),
    }
}

fn say(role: &str, text: &str) {
    println!("[{role:>8} {:>6}] {text}", std::process::id());
}

/// Removes the tour's namespace on drop, so a failed tour leaves nothing in /dev/shm.
struct Cleanup(Store);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.remove_all();
    }
}
