//! A rolling upgrade of a shared configuration's type, without stopping anything: release 1
//! of a config daemon and its services share `Config { workers, timeout_ms, service }`;
//! release 2 adds `retries` and lets `service` grow from 16 to 32 bytes (README, "Changing a
//! region's type").
//!
//! ```text
//! cargo run --example rolling_upgrade                 # the whole deploy, every role a process
//! cargo run --example rolling_upgrade -- ROLE [--region NAME] [--count N] [--period-ms MS]
//! ```
//!
//! The roles, to run by hand in separate terminals (the region defaults to `demo.config`):
//!
//! - `writer-v1`: release 1's daemon; opens (or creates) the region and bumps `workers` every
//!   period (200 ms), `--count` times (default 50).
//! - `reader-v1`, `reader-v2`: a service of release 1 or 2; prints every change, and exits
//!   after `--count` changes (default 0: until the region is removed).
//! - `writer-v2`: release 2's daemon; its open migrates the region to a layout that holds
//!   `retries`; it sets `retries` and `service`, shows that a 21-byte service name is refused
//!   while the region holds release 1's 16-byte text, then sets `retries` every period,
//!   `--count` times (default 5).
//! - `compat`: the dry run before the deploy (`shmstore compat` from Rust): may release 2
//!   share the region? Exit code 0 yes, 1 no.
//!
//! Without a role it plays the whole rolling deploy on a region of its own, checking what the
//! README promises at each step, and removes the region: `cargo test -p shmstore-examples
//! --example rolling_upgrade` runs it (any other word is taken for a test runner's filter).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::inspect::Inspector;
use shmstore::value::FixedStr;
use shmstore::{Error, Shm, ShmType};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Release 1's configuration.
mod v1 {
    use shmstore::value::FixedStr;

    #[derive(shmstore::ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Config {
        pub workers: u32,
        pub timeout_ms: u32,
        pub service: FixedStr<16>,
    }
}

/// Release 2's: `retries` added, `service` widened to 32 bytes. Fields match by path, so
/// where `retries` sits does not matter.
mod v2 {
    use shmstore::value::FixedStr;

    #[derive(shmstore::ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Config {
        pub workers: u32,
        pub timeout_ms: u32,
        pub retries: u32,
        pub service: FixedStr<32>,
    }
}

/// What a reader prints of its release's configuration.
trait Describe: ShmType {
    fn describe(&self) -> String;
}

impl Describe for v1::Config {
    fn describe(&self) -> String {
        format!(
            "workers {}, timeout {} ms, service {:?}",
            self.workers,
            self.timeout_ms,
            self.service.as_str().unwrap_or("<unreadable>")
        )
    }
}

impl Describe for v2::Config {
    fn describe(&self) -> String {
        format!(
            "workers {}, timeout {} ms, retries {}, service {:?}",
            self.workers,
            self.timeout_ms,
            self.retries,
            self.service.as_str().unwrap_or("<unreadable>")
        )
    }
}

/// A service name that release 2's text holds and release 1's does not (21 > 16 bytes).
const LONG_SERVICE: &str = "billing-api-eu-west-1";

struct Args {
    region: String,
    count: u64,
    period: Duration,
}

fn main() {
    // Errors as their messages say them (what happened, what to do), not as `Debug` shows them.
    if let Err(e) = run() {
        eprintln!("rolling_upgrade: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_default();
    let defaults = match role.as_str() {
        "writer-v1" => 50,
        "writer-v2" => 5,
        "reader-v1" | "reader-v2" | "compat" => 0,
        // A test runner listing the tests (`cargo test -- --list`): this program is one.
        _ if std::env::args().any(|a| a == "--list") => {
            println!("rolling_deploy: test");
            return Ok(());
        }
        // Any other word is a test runner's filter (`cargo test NAME`): like libtest, run the
        // one test only if the filter selects it.
        word if !word.is_empty() && !word.starts_with('-') && !"rolling_deploy".contains(word) => {
            eprintln!(
                "rolling_upgrade: no role `{word}` (writer-v1, reader-v1, writer-v2, reader-v2, \
                 compat); as a test filter it selects nothing"
            );
            return Ok(());
        }
        // No role, or what a test runner passes (`--quiet`, `--nocapture`): the whole deploy.
        _ => return deploy(),
    };
    let mut parsed = Args {
        region: "demo.config".to_owned(),
        count: defaults,
        period: Duration::from_millis(200),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--region" => parsed.region = value,
            "--count" => parsed.count = value.parse()?,
            "--period-ms" => parsed.period = Duration::from_millis(value.parse()?),
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    match role.as_str() {
        "writer-v1" => writer_v1(&parsed),
        "writer-v2" => writer_v2(&parsed),
        "reader-v1" => reader::<v1::Config>("reader-v1", &parsed),
        "reader-v2" => reader::<v2::Config>("reader-v2", &parsed),
        _ => {
            if compat(&parsed.region)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

/// Release 1's daemon: bumps `workers`. It knows nothing of `retries`, and its commits keep
/// whatever release 2 wrote there.
fn writer_v1(args: &Args) -> Result<()> {
    let config = Shm::<v1::Config>::options()
        .mode(0o644)
        .notify_readers(true)
        .open_or_create(&args.region, || v1::Config {
            workers: 1,
            timeout_ms: 500,
            service: FixedStr::new("billing").expect("7 bytes fit 16"),
        })?;
    println!(
        "[writer-v1 {}] serving `{}` (through a compatible layout: {})",
        std::process::id(),
        args.region,
        config.is_projected()
    );
    for _ in 0..args.count {
        std::thread::sleep(args.period);
        let mut g = config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        g.workers += 1;
        let workers = g.workers;
        drop(g);
        println!(
            "[writer-v1] version {}: workers {workers} (projected: {})",
            config.version(),
            config.is_projected()
        );
    }
    Ok(())
}

/// Release 2's daemon: its open migrates a release 1 region; then it writes what release 2
/// adds.
fn writer_v2(args: &Args) -> Result<()> {
    let config = Shm::<v2::Config>::options()
        .mode(0o644)
        .notify_readers(true)
        .open_or_create(&args.region, || v2::Config {
            workers: 1,
            timeout_ms: 500,
            retries: 3,
            service: FixedStr::new("billing").expect("7 bytes fit 32"),
        })?;
    println!(
        "[writer-v2 {}] serving `{}` (through a compatible layout: {})",
        std::process::id(),
        args.region,
        config.is_projected()
    );
    let mut g = config.lock().unwrap_or_else(|p| p.into_inner());
    g.retries = 3;
    g.service.set("billing-v2")?;
    g.commit()?;
    println!(
        "[writer-v2] version {}: retries 3, service \"billing-v2\"",
        config.version()
    );
    // A name that release 2's text holds but the region's (release 1's 16 bytes) does not:
    // the whole commit is refused, naming the field. Dropping the guard would panic.
    let mut g = config.lock().unwrap_or_else(|p| p.into_inner());
    g.service.set(LONG_SERVICE)?;
    match g.commit() {
        Ok(()) => println!("[writer-v2] service {LONG_SERVICE:?} committed"),
        Err(refused @ Error::InvalidField { .. }) => {
            println!("[writer-v2] service {LONG_SERVICE:?} refused, nothing written: {refused}")
        }
        Err(other) => return Err(other.into()),
    }
    for i in 0..args.count {
        std::thread::sleep(args.period);
        let mut g = config.lock().unwrap_or_else(|p| p.into_inner());
        g.retries = 3 + u32::try_from(i % 8).expect("below 8");
        let retries = g.retries;
        g.commit()?;
        println!(
            "[writer-v2] version {}: retries {retries}",
            config.version()
        );
    }
    Ok(())
}

/// A service of either release: prints every configuration it is woken for, without
/// restarting across the migration.
fn reader<T: Describe>(role: &str, args: &Args) -> Result<()> {
    let config = Shm::<T>::options()
        .wait_for_creation(Duration::from_secs(30))
        .open_reader(&args.region)?;
    let mut seen = config.version();
    let mut changes = 0;
    println!(
        "[{role} {}] version {seen}: {} (projected: {})",
        std::process::id(),
        config.read().describe(),
        config.is_projected()
    );
    while args.count == 0 || changes < args.count {
        match config.wait_for_change(seen, Some(Duration::from_secs(30))) {
            Ok(now) => {
                seen = now;
                changes += 1;
                println!(
                    "[{role}] version {seen}: {} (projected: {})",
                    config.read().describe(),
                    config.is_projected()
                );
            }
            Err(Error::Removed { .. }) => break,
            Err(other) => return Err(other.into()),
        }
    }
    // The handle still reads its region after a removal: the last value published.
    println!(
        "[{role}] done after {changes} changes; last version {}: {}",
        config.version(),
        config.read().describe()
    );
    Ok(())
}

/// The dry run before the deploy: may release 2 share the region? (`shmstore compat REGION
/// --descriptor release2.json` asks the same from the command line.)
fn compat(region: &str) -> Result<bool> {
    let verdict = Inspector::open(region)?.compatibility_with::<v2::Config>();
    println!("[compat] `{region}` with release 2: {:?}", verdict.overall);
    for field in &verdict.fields {
        println!("[compat]   {} {}", field.path, field.verdict.name());
    }
    Ok(verdict.is_compatible())
}

/// A role in a child process, stopped and reaped (and its output collected) on every path.
struct Role {
    name: &'static str,
    child: Child,
    output: Option<JoinHandle<Vec<String>>>,
}

impl Role {
    fn start(name: &'static str, region: &str, options: &[&str]) -> Result<Role> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(name)
            .args(["--region", region])
            .args(options)
            .stdout(Stdio::piped())
            .spawn()?;
        // Forward its lines as they come, and keep them for the checks.
        let stdout = child.stdout.take().expect("piped");
        let output = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                println!("{line}");
                lines.push(line);
            }
            lines
        });
        Ok(Role {
            name,
            child,
            output: Some(output),
        })
    }

    /// Waits for it to exit; an error unless it succeeded. Returns what it printed.
    fn finish(mut self) -> Result<Vec<String>> {
        let status = self.child.wait()?;
        let lines = self.output.take().expect("once").join().unwrap_or_default();
        if !status.success() {
            return Err(format!("{} failed: {status}", self.name).into());
        }
        Ok(lines)
    }

    /// Stops it as a deploy stops a service (SIGTERM).
    fn stop(self) -> Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM)?;
        let mut role = self;
        role.child.wait()?;
        Ok(())
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes the demo's region on every path, failures included.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        match shmstore::unlink(&self.0) {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => eprintln!("[deploy] could not remove `{}`: {e}", self.0),
        }
    }
}

fn check(holds: bool, what: &str) -> Result<()> {
    if holds {
        println!("[deploy] ok: {what}");
        Ok(())
    } else {
        Err(format!("[deploy] FAILED: {what}").into())
    }
}

/// The last version a reader reported before it exited.
fn last_version(lines: &[String]) -> Option<u64> {
    let line = lines.iter().rev().find(|l| l.contains("last version "))?;
    let rest = &line[line.find("last version ")? + "last version ".len()..];
    rest.split(':').next()?.parse().ok()
}

/// The whole rolling deploy, in order, each role a process.
fn deploy() -> Result<()> {
    let region = format!("demo-{}.config", std::process::id());
    let _remove = RemoveOnDrop(region.clone());
    println!("[deploy] 1. release 1 runs: a writer and a reader on `{region}`");
    let writer1 = Role::start("writer-v1", &region, &["--count", "1000"])?;
    let reader1 = Role::start("reader-v1", &region, &[])?;
    let watch = Shm::<v2::Config>::options()
        .wait_for_creation(Duration::from_secs(30))
        .open_reader(&region)?;
    watch.wait_for_change(0, Some(Duration::from_secs(30)))?;

    println!("[deploy] 2. the dry run: may release 2 share the region?");
    check(
        compat(&region)?,
        "release 2 is compatible with release 1's region",
    )?;

    println!("[deploy] 3. a reader of release 2, before its writer");
    let reader2 = Role::start("reader-v2", &region, &[])?;

    println!("[deploy] 4. release 2's writer migrates the region and sets `retries`");
    let lines = Role::start("writer-v2", &region, &["--count", "2"])?.finish()?;
    check(
        lines.iter().any(|l| l.contains("refused")),
        "a service name release 1 cannot hold is refused while the region holds its layout",
    )?;
    let versions = Inspector::open(region.as_str())?.versions()?;
    for (n, v) in versions.iter().enumerate() {
        println!(
            "[deploy]   #{} {}: {}",
            n + 1,
            v.type_name,
            v.fields.join(", ")
        );
    }
    check(versions.len() == 2, "the region lists both versions")?;

    let before = watch.read();
    let now = watch.wait_for_change(watch.version(), Some(Duration::from_secs(30)))?;
    let after = watch.read();
    check(
        after.workers > before.workers && after.retries == before.retries,
        &format!(
            "release 1's writer still commits (version {now}, workers {} -> {}) and keeps \
             retries {}",
            before.workers, after.workers, before.retries
        ),
    )?;

    println!("[deploy] 5. stop release 1's writer");
    writer1.stop()?;

    println!("[deploy] 6. release 1's writer restarts after the migration (a rollback)");
    Role::start("writer-v1", &region, &["--count", "2", "--period-ms", "50"])?.finish()?;
    check(
        watch.read().retries == after.retries,
        "the restarted release 1 opened the migrated region and kept retries",
    )?;

    println!("[deploy] 7. release 1 is gone: can release 2 write the long name now?");
    let writer2 = Shm::<v2::Config>::open(region.as_str())?;
    let mut g = writer2.lock().unwrap_or_else(|p| p.into_inner());
    g.service.set(LONG_SERVICE)?;
    let refused = g.commit();
    match &refused {
        Ok(()) => println!("[deploy]   committed"),
        Err(e) => println!("[deploy]   refused: {e}"),
    }
    check(
        matches!(refused, Err(Error::InvalidField { .. })),
        "no: the region keeps release 1's 16-byte text until it is created anew",
    )?;
    drop(writer2);

    println!("[deploy] 8. done: remove the region; the readers see Removed and exit");
    let last = watch.version();
    shmstore::unlink(&region)?;
    for (name, reader) in [("reader-v1", reader1), ("reader-v2", reader2)] {
        let lines = reader.finish()?;
        check(
            last_version(&lines) == Some(last),
            &format!("{name} followed every change up to version {last} without a restart"),
        )?;
    }
    Ok(())
}
