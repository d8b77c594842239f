//! What the `shmstore` command's tests share: unique names that are removed even when a test
//! fails, the payload types, running the built binary with bounded waits, child processes,
//! and compiling C.
//!
//! Every object a test makes in `/dev/shm` is named `shmstore-test-…`, and it, every System V
//! segment and every temporary directory is removed by the library tests' one cleanup fixture
//! (`shmstore_tests::Place`, and its `TempDir`), so CI's leftover check sees nothing.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shmstore::{Location, Shm, ShmType};
// Each test binary uses its own part of these, as of the rest of this module.
#[allow(unused_imports)]
pub use shmstore_tests::{fresh_sysv_key, is_root, region, unique_name, Backend, Place, TempDir};

/// The directory behind `shm_open`.
pub const SHM_DIR: &str = "/dev/shm";

/// The environment variable that turns a re-executed test binary into a helper process.
pub const CHILD_ENV: &str = "SHMSTORE_CLI_TEST_CHILD";

/// A nested struct.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Pos {
    /// Across.
    pub x: f32,
    /// Up.
    pub y: f32,
}

/// An element of an array of structs.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Wheel {
    /// Bar.
    pub pressure: f32,
    /// Turns per minute.
    pub rpm: u32,
}

/// Every kind of field the descriptor has: scalars of several widths (128-bit too), a nested
/// struct, an array of structs, a two-dimensional array of primitives and a byte array.
/// 80 bytes, align 16, no padding.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Sample {
    /// Offset 0.
    pub counter: u64,
    /// Offset 8.
    pub scale: f64,
    /// Offset 16.
    pub big: i128,
    /// Offset 32.
    pub pos: Pos,
    /// Offset 40.
    pub wheels: [Wheel; 2],
    /// Offset 56.
    pub samples: [[u16; 2]; 3],
    /// Offset 68.
    pub tag: [u8; 4],
    /// Offset 72.
    pub tail: u64,
}

/// A recognisable value.
pub fn sample() -> Sample {
    Sample {
        counter: 7,
        scale: 0.25,
        big: i128::MIN,
        pos: Pos { x: 1.5, y: 0.1 },
        wheels: [
            Wheel {
                pressure: 2.25,
                rpm: 100,
            },
            Wheel {
                pressure: 2.5,
                rpm: 200,
            },
        ],
        samples: [[1, 2], [3, 4], [5, 6]],
        tag: *b"abcd",
        tail: u64::MAX,
    }
}

/// The `path = value` lines `inspect` prints for [`sample()`].
pub const SAMPLE_LINES: &[&str] = &[
    "counter = 7",
    "scale = 0.25",
    "big = -170141183460469231731687303715884105728",
    "pos.x = 1.5",
    "pos.y = 0.10000000149011612",
    "wheels[].pressure = [2.25, 2.5]",
    "wheels[].rpm = [100, 200]",
    "samples = [1, 2, 3, 4, 5, 6]",
    "tag = [97, 98, 99, 100]",
    "tail = 18446744073709551615",
];

/// Creates a [`Sample`] region in a new System V segment, at the first free candidate key.
pub fn sysv_region(value: Sample) -> (Shm<Sample>, Place) {
    let place = Place::new(Backend::SysV, "cli");
    let key = place.key().expect("a System V place");
    let shm = Shm::<Sample>::create(Location::sysv(key), value)
        .unwrap_or_else(|e| panic!("cannot create a System V region at key {key:#x}: {e}"));
    (shm, place)
}

/// Creates a System V segment as another program would (`tests/c/make_segment.c`, compiled
/// into `dir`): 4096 bytes that do not start with a shmstore header.
pub fn foreign_segment(dir: &Path) -> Place {
    let program = compile_c(
        &c_dir().join("make_segment.c"),
        dir,
        &dir.join("make_segment"),
    )
    .unwrap_or_else(|errors| panic!("make_segment.c does not compile:\n{errors}"));
    for _ in 0..64 {
        let key = fresh_sysv_key();
        let output = Command::new(&program)
            .arg(format!("{:#x}", key as u32))
            .output()
            .unwrap();
        match output.status.code() {
            Some(0) => return Place::adopt_key(key),
            Some(3) => continue, // the key is taken
            _ => panic!(
                "make_segment failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
    panic!("64 candidate System V keys were all taken");
}

/// Whether a System V segment with this key exists (`/proc/sysvipc/shm`).
pub fn segment_exists(key: i32) -> bool {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .any(|line| line.split_whitespace().next() == Some(&key.to_string()))
}

/// Creates a plain file in `/dev/shm` that is not a region (another program's object): its
/// name, and the guard that removes it.
pub fn foreign_object(contents: &[u8]) -> (String, Place) {
    let (name, place) = region("foreign");
    std::fs::write(Path::new(SHM_DIR).join(&name), contents).unwrap();
    (name, place)
}

/// Whether `/dev/shm/NAME` exists.
pub fn exists(name: &str) -> bool {
    Path::new(SHM_DIR).join(name).exists()
}

/// The built `shmstore` binary.
pub fn shmstore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmstore"))
}

/// What a finished command printed, for assertions with useful messages.
pub struct Ran {
    /// Its exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// The command line, for messages.
    pub what: String,
}

impl Ran {
    /// Panics unless the command exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Ran {
        assert_eq!(
            self.code,
            Some(code),
            "`{}` exited with {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command succeeded.
    pub fn ok(&self) -> &Ran {
        self.expect_code(0)
    }

    /// Panics unless the command failed with exit code 1 and a message starting with `start`.
    pub fn expect_failure(&self, start: &str) -> &Ran {
        self.expect_code(1);
        assert!(
            self.stderr.starts_with(start),
            "`{}`: stderr does not start with {start:?}: {}",
            self.what,
            self.stderr
        );
        self
    }
}

impl From<(String, Output)> for Ran {
    fn from((what, output): (String, Output)) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            what,
        }
    }
}

/// Runs `shmstore ARGS…` to completion, at most 30 seconds.
pub fn run(args: &[&str]) -> Ran {
    run_in(Path::new("."), args)
}

/// Runs `shmstore ARGS…` in the directory `dir` to completion, at most 30 seconds.
pub fn run_in(dir: &Path, args: &[&str]) -> Ran {
    let what = format!("shmstore {}", args.join(" "));
    let child = shmstore()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30), &what);
    Ran::from((what, output))
}

/// A running `shmstore watch`, with its first line (`watching …`) read.
pub struct Watch {
    /// The process.
    pub child: Child,
    /// The rest of its output.
    pub stdout: BufReader<ChildStdout>,
    /// Its first line, newline included.
    pub first: String,
}

/// Starts `shmstore ARGS` (a `watch`) with stdout and stderr piped, and reads its first line.
pub fn start_watch(args: &[&str]) -> Watch {
    let mut child = shmstore()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    Watch {
        child,
        stdout,
        first,
    }
}

impl Watch {
    /// Calls `write` every 20 ms (500 times at most) until the watch exits, which it must do
    /// with success within 30 s: what it printed after its first line.
    pub fn output_while(mut self, write: impl Fn() + Sync) -> String {
        let done = AtomicBool::new(false);
        let status = std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..500 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    write();
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let status = wait_status(&mut self.child, Duration::from_secs(30), "shmstore watch");
            done.store(true, Ordering::Relaxed);
            status
        });
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        assert!(status.success(), "watch failed: {status:?}\n{rest}");
        rest
    }
}

/// Waits for `child` and collects its output; kills it and panics after `timeout`.
pub fn wait_with_timeout(mut child: Child, timeout: Duration, what: &str) -> Output {
    // Read the pipes on threads so that a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let status = wait_status(&mut child, timeout, what);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Waits for `child` to exit; kills it and panics after `timeout`.
pub fn wait_status(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Tests that run a command over every object in `/dev/shm` (`list`, `gc`) hold this: `list`
/// maps every region for a moment, and `gc` must not see another test's `list` as a user.
pub fn whole_shm_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs this test binary again as a helper process doing `action` (see each test file's
/// `child_process_entry`), and waits for it to exit successfully.
pub fn run_child(action: &str) {
    let what = format!("helper process `{action}`");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, action)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30), &what);
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// In a helper process: does the action it was started for. `create NAME` creates a
/// [`Sample`] region and exits (so its creator is dead afterwards).
pub fn child_action() {
    let Ok(action) = std::env::var(CHILD_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let mut words = action.split_whitespace();
    match (words.next(), words.next()) {
        (Some("create"), Some(name)) => {
            shmstore::Shm::<Sample>::create(name, sample()).unwrap();
        }
        _ => panic!("unknown helper action {action:?}"),
    }
}

/// The C compiler, or a panic that says how to get one: these tests must not pass silently
/// on a machine that cannot run them (CI installs `cc`).
pub fn cc() -> &'static str {
    let found = Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the C compiler `cc` is missing: the C interop tests need it (Debian/Ubuntu: \
         `apt-get install gcc`; CI installs it in .ci/run)"
    );
    "cc"
}

/// Compiles `source` (with `include_dir` on the include path) into `dir/name` with
/// `cc -std=c11 -O2 -Wall -Werror … -lpthread`; `Err` carries the compiler's output.
pub fn compile_c(source: &Path, include_dir: &Path, out: &Path) -> Result<PathBuf, String> {
    compile_c_with(source, include_dir, out, &[])
}

/// [`compile_c`] with more compiler flags (`-Wextra`).
pub fn compile_c_with(
    source: &Path,
    include_dir: &Path,
    out: &Path,
    flags: &[&str],
) -> Result<PathBuf, String> {
    let output = Command::new(cc())
        .args(["-std=c11", "-O2", "-Wall", "-Werror"])
        .args(flags)
        .arg("-I")
        .arg(include_dir)
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg("-lpthread")
        .output()
        .unwrap();
    if output.status.success() {
        Ok(out.to_path_buf())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The smallest program that includes `region.h`.
pub const INCLUDES_REGION_H: &str = "#include \"region.h\"\nint main(void) { return 0; }\n";

/// `cc -std=c11 -Wall -Werror -fsyntax-only`, and `flags`, on `program` written to `use.c`
/// in `dir`, with `header` as `region.h` beside it: `Err` carries the compiler's output.
pub fn syntax_check(dir: &Path, header: &str, program: &str, flags: &[&str]) -> Result<(), String> {
    std::fs::write(dir.join("region.h"), header).unwrap();
    std::fs::write(dir.join("use.c"), program).unwrap();
    let output = Command::new(cc())
        .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only"])
        .args(flags)
        .arg("-I")
        .arg(dir)
        .arg(dir.join("use.c"))
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Where the C programs of the interop tests are.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c")
}
