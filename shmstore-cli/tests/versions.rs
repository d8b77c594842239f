//! The `shmstore` command shows versions as the library counts them (issue 15, item 5): the
//! number of commits, in `inspect` (text and `--json`), `list --json` and `watch`; the header
//! section keeps the raw version word, twice that, and says so. `watch` says when it shows
//! several commits as one change, so that a jump is not taken for lost updates.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use shmstore::Shm;

fn json(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", ran.what, ran.stdout))
}

/// A `Sample` region committed to three times: at version 3.
fn three_commits(tag: &str) -> (String, Place, Shm<Sample>) {
    let (name, place) = region(tag);
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    assert_eq!(shm.version(), 0);
    for _ in 0..3 {
        shm.lock().unwrap().counter += 1;
    }
    assert_eq!(shm.version(), 3);
    (name, place, shm)
}

#[test]
fn inspect_and_list_show_the_number_of_commits() {
    let (name, _cleanup, _shm) = three_commits("versions-inspect");

    let inspected = run(&["inspect", &name, "--json"]);
    inspected.ok();
    let v = json(&inspected);
    assert_eq!(v["version"], 3, "{}", inspected.stdout);
    assert_eq!(v["header"]["version"], 6, "the header's raw word");

    let text = run(&["inspect", &name]);
    text.ok();
    assert!(
        text.stdout.contains("\nvalue at version 3\n"),
        "{}",
        text.stdout
    );
    let header_row = text
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("version "))
        .unwrap_or_else(|| panic!("no version row in\n{}", text.stdout));
    assert!(
        header_row.ends_with(" 6 (version 3, even: published)"),
        "{header_row:?}"
    );

    let listed = run(&["list", "--json"]);
    listed.ok();
    let all = json(&listed);
    let entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is not listed"));
    assert_eq!(entry["version"], 3);
}

/// The rest of a `watch --count 1`'s output once it exited (bounded).
fn rest_of(mut watch: Watch) -> String {
    let status = wait_status(&mut watch.child, Duration::from_secs(30), "shmstore watch");
    let mut rest = String::new();
    watch.stdout.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "watch failed: {status:?}\n{rest}");
    rest
}

#[test]
fn watch_shows_one_commit_as_the_next_version() {
    let (name, _cleanup, shm) = three_commits("versions-watch");
    let watch = start_watch(&["watch", &name, "--count", "1"]);
    assert_eq!(
        watch.first,
        format!("watching {name} (Sample) from version 3; Ctrl-C stops\n")
    );
    shm.lock().unwrap().counter += 1;
    let rest = rest_of(watch);
    assert!(
        rest.starts_with("version 4\n  counter: 10 -> 11\n"),
        "{rest}"
    );
}

/// Sends `signal` (`STOP` or `CONT`) to a process this test started.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits (at most a minute) until the process is stopped by a signal.
fn wait_until_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // The state follows the command name's closing parenthesis.
        let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
        if matches!(state, Some("T" | "t")) {
            return;
        }
        assert!(Instant::now() < deadline, "{pid} never stopped: {stat}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn watch_says_how_many_commits_it_shows_as_one_change() {
    let (name, _cleanup, shm) = three_commits("versions-watch-many");
    let watch = start_watch(&["watch", &name, "--count", "1"]);
    assert!(watch.first.contains("from version 3;"), "{}", watch.first);
    // Stopped, it cannot look between the commits: it sees them together.
    let pid = watch.child.id();
    signal(pid, "STOP");
    wait_until_stopped(pid);
    shm.lock().unwrap().counter += 1;
    shm.lock().unwrap().counter += 1;
    signal(pid, "CONT");
    let rest = rest_of(watch);
    assert!(
        rest.starts_with(
            "version 5 (2 commits since version 3, shown as one change)\n  counter: 10 -> 12\n"
        ),
        "{rest}"
    );
}

/// Bug: `watch` of a region that a newer release migrated went silent: it kept polling the
/// old object, whose version no longer moves, while the writers went on in its successor.
/// It now follows the region that replaced it, says so, and prints its changes.
#[test]
fn regression_watch_went_silent_at_a_migration() {
    use shmstore_tests::config_versions::{ConfigV1, LevelV1};
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    let (name, _cleanup) = region("watch-migrated");
    let old = Shm::<ConfigV1>::create(
        &name,
        ConfigV1 {
            workers: 4,
            timeout_ms: 500,
            service: shmstore::value::FixedStr::new("gateway").unwrap(),
            level: LevelV1::Warn.into(),
            _pad: [0; 3],
        },
    )
    .unwrap();
    let watch = start_watch(&["watch", &name, "--count", "1"]);
    assert!(
        watch
            .first
            .starts_with(&format!("watching {name} (Config)")),
        "{}",
        watch.first
    );
    let new = Shm::<ConfigV1Plus>::open(&name).expect("migrates");
    assert!(old.read().workers == 4 && !new.is_projected());
    // Commits until it has shown one from the region that replaced the one it watched.
    let rest = watch.output_while(|| new.lock().unwrap().retries += 1);
    assert!(
        rest.contains("replaced under its name by a region of type Config (a migration)"),
        "{rest}"
    );
    assert!(
        rest.lines().any(|l| l.starts_with("  retries: ")),
        "a change of the new field:\n{rest}"
    );
}
