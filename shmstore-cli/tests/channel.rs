//! `shmstore list` and `shmstore inspect` on a byte channel (`ShmChannel`): its kind, its
//! capacity and the bytes its messages use, not the ring's unit type counted as elements.

mod common;

use common::*;
use shmstore::{QueueMode, ShmChannel};

#[test]
fn child_process_entry() {
    child_action();
}

fn a_channel(name: &str) -> ShmChannel {
    let channel = ShmChannel::options()
        .queue_mode(QueueMode::Spsc)
        .capacity(4096)
        .max_message(1000)
        .create(name)
        .unwrap();
    channel.send(b"thirteen byte").unwrap(); // 24 bytes in the ring
    channel.send(&[0; 100]).unwrap(); // 112
    channel
}

#[test]
fn list_and_inspect_show_a_channel_in_bytes() {
    let _scan = whole_shm_lock();
    let (name, _cleanup) = region("cli-channel");
    let _channel = a_channel(&name);

    let ran = run(&["list"]);
    ran.ok();
    let row = ran
        .stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("no row for {name} in\n{}", ran.stdout));
    for cell in ["queue", "4096 B ring", "136 B"] {
        assert!(row.contains(cell), "no `{cell}` in {row}");
    }

    let ran = run(&["list", "--json"]);
    ran.ok();
    let listed: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let entry = listed
        .as_array()
        .and_then(|all| all.iter().find(|e| e["name"] == name.as_str()))
        .unwrap_or_else(|| panic!("no {name} in {listed}"));
    assert_eq!(entry["queue"]["byte_channel"], true, "{entry}");
    assert_eq!(entry["queue"]["capacity"], 4096, "{entry}");
    assert_eq!(entry["queue"]["len"], 136, "{entry}");

    let ran = run(&["inspect", &name]);
    ran.ok();
    assert!(
        ran.stdout
            .contains("byte channel, spsc, capacity 4096 bytes, 136 bytes used, open"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("used         136 of 4096 bytes"),
        "{}",
        ran.stdout
    );
}

/// `inspect` shows a channel's geometry and state, and decodes no element of its ring unit.
#[test]
fn inspect_shows_a_channels_geometry_not_an_element() {
    let (name, _cleanup) = region("cli-channel-geometry");
    let channel = a_channel(&name);

    let ran = run(&["inspect", &name, "--json"]);
    ran.ok();
    let shown: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let c = &shown["channel"];
    assert_eq!(c["capacity"], 4096, "{shown}");
    assert_eq!(c["max_message"], 1000, "{shown}");
    assert_eq!(c["used_bytes"], 136, "{shown}");
    assert_eq!(c["closed"], false, "{shown}");
    assert_eq!(c["mode"], "spsc", "{shown}");
    // This process sent: it holds the producer's role; nobody received yet.
    assert_eq!(c["producer_pid"], std::process::id(), "{shown}");
    assert_eq!(c["consumer_pid"], serde_json::Value::Null, "{shown}");
    assert_eq!(shown["fields"], serde_json::json!([]), "{shown}");
    assert_eq!(shown["values"], serde_json::Value::Null, "{shown}");

    channel.close();
    let ran = run(&["inspect", &name]);
    ran.ok();
    for line in [
        "max_message  1000 bytes",
        "used         136 of 4096 bytes",
        "closed       yes",
        &format!("producer     pid {} (alive)", std::process::id()),
        "consumer     none",
    ] {
        assert!(ran.stdout.contains(line), "no `{line}` in\n{}", ran.stdout);
    }
    assert!(!ran.stdout.contains("bytes = "), "{}", ran.stdout);
}
