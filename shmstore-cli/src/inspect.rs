//! `shmstore inspect LOCATION`: the header, every field of the stored descriptor and its value,
//! for a region given by name, file path or System V key.

use std::io::Write;

use serde_json::{json, Value};
use shmstore::inspect::{ChannelInfo, HeaderFields, Inspector, VersionInfo};
use shmstore::{printable, Error};

use crate::failure::Outcome;
use crate::fields::{
    display_path, snapshot_within, stored_path_text, table, value_lines, IN_PLACE_PATIENCE,
};
use crate::format::{
    boot_id_text, flags_text, kind_text, queue_mode_text, state_text, FLAG_IN_PLACE,
};
use crate::scan::{self, mode_text, Entry, Users};
use crate::{json, procs, values};

/// Prints the region at `name` (a location as `Location::parse` reads it), as text or JSON.
pub fn run(name: &str, as_json: bool, max_elements: usize, out: &mut dyn Write) -> Outcome {
    let (entry, view) = scan::region(name)?;
    if as_json {
        writeln!(
            out,
            "{}",
            json::pretty(&to_json(&entry, &view, max_elements))
        )?;
    } else {
        out.write_all(text(&entry, &view, max_elements).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn text(entry: &Entry, view: &Inspector, max_elements: usize) -> String {
    let h = view.header_fields();
    let info = view.info();
    let users = Users::load();
    let alive = procs::creator_alive(h.creator_pid, Some(h.boot_id));
    let this_boot = procs::boot_id() == Some(h.boot_id);
    let mode = match &info.queue {
        Some(q) if q.byte_channel => format!(
            "byte channel, {}, capacity {} bytes, {} bytes used, {}",
            json::queue_mode(q.mode),
            q.capacity,
            q.len,
            if q.closed { "closed" } else { "open" }
        ),
        Some(q) => format!(
            "queue, {}, capacity {}, {} queued, {}",
            json::queue_mode(q.mode),
            q.capacity,
            q.len,
            if q.closed { "closed" } else { "open" }
        ),
        None if h.flags & FLAG_IN_PLACE != 0 => {
            format!(
                "value, in place (one copy, seqlock, poisoning){}",
                if info.poisoned { ", POISONED" } else { "" }
            )
        }
        None => "value, default mode (two copies, crash-atomic)".to_string(),
    };
    let mut s = String::new();
    let summary = vec![
        vec!["region".to_string(), printable(&entry.name).into_owned()],
        vec!["kind".to_string(), mode],
        vec![
            "type".to_string(),
            format!(
                "{} ({} bytes, align {})",
                printable(view.type_name()),
                info.size,
                h.payload_align
            ),
        ],
        vec![
            "creator".to_string(),
            format!(
                "pid {} ({})",
                h.creator_pid,
                if alive { "alive" } else { "dead" }
            ),
        ],
        vec![
            "object".to_string(),
            format!(
                "{} bytes, mode {}, owner {}",
                entry.object.size,
                mode_text(entry.object.mode),
                users.name(entry.object.uid)
            ),
        ],
    ];
    s.push_str(&table(&summary));

    s.push_str("\nheader\n");
    let row = |k: &str, v: String| vec![format!("  {k}"), v];
    let header = vec![
        row("magic", "SHMSTORE".into()),
        row("format_version", h.format_version.to_string()),
        row("header_size", h.header_size.to_string()),
        row("state", format!("{} ({})", h.state, state_text(h.state))),
        row("flags", format!("{:#x} ({})", h.flags, flags_text(h.flags))),
        row("fingerprint", format!("{:#018x}", h.fingerprint)),
        row("payload_offset", h.payload_offset.to_string()),
        row("payload_size", h.payload_size.to_string()),
        row("payload_align", h.payload_align.to_string()),
        row("region_size", h.region_size.to_string()),
        row("descriptor_offset", h.descriptor_offset.to_string()),
        row("descriptor_len", h.descriptor_len.to_string()),
        row("creator_pid", h.creator_pid.to_string()),
        row("mutex_size", h.mutex_size.to_string()),
        row(
            "boot_id",
            format!(
                "{} ({})",
                boot_id_text(&h.boot_id),
                if this_boot {
                    "this boot"
                } else {
                    "another boot"
                }
            ),
        ),
        row("kind", format!("{} ({})", h.kind, kind_text(h.kind))),
        row(
            "queue_mode",
            format!("{} ({})", h.queue_mode, queue_mode_text(h.queue_mode)),
        ),
        row("queue_capacity", h.queue_capacity.to_string()),
        row("queue_element_size", h.queue_element_size.to_string()),
        row("version", version_word_text(&h)),
        row("waiters", h.waiters.to_string()),
        row("poisoned", h.poisoned.to_string()),
        row("commit_in_progress", h.commit_in_progress.to_string()),
        row("read_requests", h.read_requests.to_string()),
        row("reads_served", h.reads_served.to_string()),
        row("versions_offset", h.versions_offset.to_string()),
        row("versions_len", h.versions_len.to_string()),
    ];
    s.push_str(&table(&header));
    // Before the value, which stays the last section.
    s.push_str(&versions_text(view, h.fingerprint));

    match &info.queue {
        None => match snapshot_within(view, IN_PLACE_PATIENCE) {
            Some((version, bytes)) => {
                s.push_str(&format!("\nvalue at version {version}\n"));
                for line in lines(view, &bytes, max_elements) {
                    s.push_str(&format!("  {line}\n"));
                }
            }
            None => {
                s.push_str(&format!("\nvalue: {}\n", unfinished_write(&h)));
            }
        },
        // A channel's messages are records in a ring, not elements of its unit type: its
        // geometry and state instead.
        Some(q) if q.byte_channel => match view.channel() {
            Some(channel) => s.push_str(&channel_text(&channel)),
            None => s.push_str(&format!(
                "\nmessages: {} of {} ring bytes used (FORMAT.md, \"Byte channels\")\n",
                q.len, q.capacity
            )),
        },
        Some(q) => {
            let bytes = view.read();
            if bytes.is_empty() {
                s.push_str("\noldest element: none, the queue is empty\n");
                s.push_str("element fields\n");
                for field in view.fields() {
                    s.push_str(&format!(
                        "  {}: {} at offset {}\n",
                        display_path(field),
                        field.type_text(),
                        field.offset
                    ));
                }
            } else {
                s.push_str(&format!("\noldest element (of {})\n", q.len));
                for line in lines(view, &bytes, max_elements) {
                    s.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    s
}

/// The "channel" block of a byte channel: geometry, bytes used, state and SPSC role holders.
fn channel_text(channel: &ChannelInfo) -> String {
    let holder = |pid: Option<u32>| match pid {
        Some(pid) if procs::alive(pid) => format!("pid {pid} (alive)"),
        Some(pid) => format!("pid {pid} (gone: the next one takes the role over)"),
        None => "none".to_string(),
    };
    let mut rows = vec![
        vec![
            "  mode".to_string(),
            json::queue_mode(channel.mode).to_string(),
        ],
        vec![
            "  capacity".to_string(),
            format!("{} bytes", channel.capacity),
        ],
        vec![
            "  max_message".to_string(),
            format!("{} bytes", channel.max_message),
        ],
        vec![
            "  used".to_string(),
            format!(
                "{} of {} bytes (messages, their 8-byte headers and padding)",
                channel.used_bytes, channel.capacity
            ),
        ],
        vec![
            "  closed".to_string(),
            if channel.closed { "yes" } else { "no" }.to_string(),
        ],
    ];
    if channel.mode == shmstore::QueueMode::Spsc {
        rows.push(vec!["  producer".to_string(), holder(channel.producer_pid)]);
        rows.push(vec!["  consumer".to_string(), holder(channel.consumer_pid)]);
    }
    format!(
        "\nchannel (messages are records in a ring: FORMAT.md, \"Byte channels\")\n{}",
        table(&rows)
    )
}

/// The "versions" block: the layout the region holds, every version that shaped it (the
/// newest last), and which of them know each field of the held layout. A table that does not
/// decode is said to be unreadable, after everything else was shown.
fn versions_text(view: &Inspector, fingerprint: u64) -> String {
    let mut s = format!(
        "\nversions\n  holds {} (fingerprint {fingerprint:#018x})\n",
        printable(view.type_name())
    );
    let versions = match view.versions() {
        Ok(versions) => versions,
        Err(e) => {
            s.push_str(&format!(
                "  unreadable: {}\n",
                printable(&unreadable_reason(e))
            ));
            return s;
        }
    };
    for (index, version) in versions.iter().enumerate() {
        let mut notes = vec![format!("fingerprint {:#018x}", version.fingerprint)];
        if index + 1 == versions.len() {
            notes.push("newest".into());
        }
        if version.is_stored {
            notes.push("held".into());
        }
        let fields: Vec<String> = version
            .fields
            .iter()
            .map(|path| printable(&stored_path_text(path)).into_owned())
            .collect();
        s.push_str(&format!(
            "  #{} {} ({}): {}\n",
            index + 1,
            printable(&version.type_name),
            notes.join(", "),
            fields.join(", ")
        ));
    }
    let mut rows = vec![vec!["  field".to_string(), "known by".to_string()]];
    for (field, known) in view.fields().iter().zip(view.fields_known_by(&versions)) {
        rows.push(vec![
            format!("  {}", display_path(field)),
            version_numbers(&known),
        ]);
    }
    s.push_str(&table(&rows));
    s
}

/// `#1 #2`: the versions at these indexes, numbered from 1 as the versions block numbers them;
/// `none` for a field no version knows (only a forged table has one).
fn version_numbers(indexes: &[usize]) -> String {
    if indexes.is_empty() {
        return "none".into();
    }
    let numbers: Vec<String> = indexes.iter().map(|i| format!("#{}", i + 1)).collect();
    numbers.join(" ")
}

/// Why the versions table could not be read: the corruption's reason alone (the region is
/// named above), or the whole error.
fn unreadable_reason(e: Error) -> String {
    match e {
        Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// `"versions"` and `"versions_error"` for `inspect --json`, and each field's `"known_by"`
/// (version numbers, from 1): the versions, or null and why the table is unreadable.
fn versions_json(view: &Inspector) -> (Value, Value, Option<Vec<Vec<usize>>>) {
    match view.versions() {
        Ok(versions) => {
            let known_by = view.fields_known_by(&versions);
            let count = versions.len();
            let list = versions
                .iter()
                .enumerate()
                .map(|(index, version)| version_json(index, count, version))
                .collect();
            (Value::Array(list), Value::Null, Some(known_by))
        }
        Err(e) => (Value::Null, unreadable_reason(e).into(), None),
    }
}

fn version_json(index: usize, count: usize, version: &VersionInfo) -> Value {
    json!({
        "number": index + 1,
        "type": version.type_name,
        "fingerprint": format!("{:#018x}", version.fingerprint),
        "fields": version.fields.iter().map(|p| stored_path_text(p)).collect::<Vec<_>>(),
        "newest": index + 1 == count,
        "held": version.is_stored,
    })
}

fn to_json(entry: &Entry, view: &Inspector, max_elements: usize) -> Value {
    let h = view.header_fields();
    let info = view.info();
    let users = Users::load();
    let (version, bytes, note) = match info.queue {
        None => match snapshot_within(view, IN_PLACE_PATIENCE) {
            Some((v, b)) => (Some(v), b, None),
            None => (None, Vec::new(), Some(unfinished_write(&h))),
        },
        Some(_) => (None, view.read(), None),
    };
    let (versions, versions_error, known_by) = versions_json(view);
    let channel = view.channel();
    // A channel's ring unit is no element: nothing of it is decoded.
    let element_fields = if channel.is_some() {
        &[][..]
    } else {
        view.fields()
    };
    let fields: Vec<Value> = element_fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut field = json::field(f, &bytes, max_elements);
            // The numbers of the versions that know the field; null when the table is
            // unreadable.
            let known = known_by
                .as_ref()
                .and_then(|known_by| known_by.get(i))
                .map(|known| known.iter().map(|index| index + 1).collect::<Vec<_>>());
            field["known_by"] = json!(known);
            field
        })
        .collect();
    // Decoded by kind, for a region that has kinds and a value to show.
    let values = (channel.is_none() && values::has_kinds(view) && !bytes.is_empty())
        .then(|| values::object(&view.values(&bytes), max_elements));
    json!({
        "name": entry.name,
        "backend": entry.backend().as_str(),
        "kind": entry.kind.as_str(),
        "type": view.type_name(),
        "size": info.size,
        "in_place": info.in_place,
        "poisoned": info.poisoned,
        "version": version,
        "creator_pid": h.creator_pid,
        "creator_alive": procs::creator_alive(h.creator_pid, Some(h.boot_id)),
        "object_size": entry.object.size,
        "mode": mode_text(entry.object.mode),
        "uid": entry.object.uid,
        "owner": users.name(entry.object.uid),
        "queue": info.queue.as_ref().map(json::queue),
        // For a byte channel: its geometry and state (no element is decoded: `fields` is
        // empty); null otherwise.
        "channel": channel.as_ref().map(json::channel),
        "header": json::header(view),
        // For a queue: the fields of its oldest element, without values when it is empty.
        "fields": fields,
        // By kind (text as strings, flags as booleans …: src/values.rs), for a region with
        // kinds (format version 2); null otherwise.
        "values": values,
        // Why there are no values: an in-place write that does not finish.
        "note": note,
        // The stored descriptor, whole (format version and bytes in hex): what
        // `shmstore compat REGION --descriptor FILE` compares.
        "descriptor": crate::compat::descriptor_json(&view.descriptor()),
        // Every type that shaped the region, oldest first (the newest is the one that last
        // migrated it; `held` marks the type the region holds); null when the table is
        // unreadable, and `versions_error` says why.
        "versions": versions,
        "versions_error": versions_error,
    })
}

/// `path = value` lines: by kind for a region with kinds, else one per primitive field.
fn lines(view: &Inspector, bytes: &[u8], max_elements: usize) -> Vec<String> {
    if values::has_kinds(view) {
        values::value_lines(view, bytes, max_elements)
    } else {
        value_lines(view, bytes, max_elements)
    }
}

/// Why an in-place value cannot be shown.
fn unfinished_write(h: &HeaderFields) -> String {
    format!(
        "not shown: an in-place write has been under way for over {IN_PLACE_PATIENCE:?} \
         (after version {}: the version word {} is odd); if its writer died, the next lock() \
         poisons the region and publishes it",
        h.published_version(),
        h.version
    )
}

/// The raw version word of the header and what it means: it steps by two per commit
/// (FORMAT.md), and the version everything else shows is half of it.
fn version_word_text(h: &HeaderFields) -> String {
    format!(
        "{} (version {}, {})",
        h.version,
        h.published_version(),
        if h.write_under_way() {
            "odd: a write under way"
        } else {
            "even: published"
        }
    )
}
