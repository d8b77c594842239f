//! The JSON shapes of `list --json` and `inspect --json`, built with `serde_json::Value`.
//!
//! Numbers stay numbers where JSON can carry them exactly: every 64-bit integer is written
//! with all its digits. Two cases become strings so that no reader silently gets a wrong
//! number: 128-bit integers outside the 64-bit range, and non-finite floats (`"NaN"`, `"inf"`,
//! `"-inf"`, which JSON has no numbers for).

use serde_json::{json, Map, Value};
use shmstore::inspect::{ChannelInfo, FieldInfo, Inspector, Scalar};
use shmstore::{QueueInfo, QueueMode};

use crate::fields::{element_limit, path_text};

/// `value` as pretty JSON text, with every control character and bidi formatting character
/// as a `\uXXXX` escape: the same data, but a region's names cannot reach the terminal raw
/// (serde_json escapes only U+0000 to U+001F). Outside strings JSON text is plain ASCII, so
/// any such character left is inside a string, where the escape means the same character.
pub fn pretty(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("a Value always serialises");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // The line breaks are pretty-printing's: serde_json escapes those in strings.
        if c != '\n' && crate::failure::unsafe_for_terminals(c) {
            // Every such character is in the Basic Multilingual Plane: one `\u` escape.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// One decoded primitive.
pub fn scalar(value: Scalar) -> Value {
    match value {
        Scalar::Unsigned(v) => u64::try_from(v).map_or_else(|_| v.to_string().into(), Value::from),
        Scalar::Signed(v) => i64::try_from(v).map_or_else(|_| v.to_string().into(), Value::from),
        Scalar::Float(v) if v.is_finite() => Value::from(v),
        Scalar::Float(v) => Value::String(Scalar::Float(v).to_string()),
    }
}

/// A field: where it is, what it is, and its value (an array for an array, cut to
/// `max_elements`; `count` says how many there are).
pub fn field(field: &FieldInfo, bytes: &[u8], max_elements: usize) -> Value {
    let values: Vec<Value> = field
        .values(bytes, element_limit(max_elements, bytes))
        .into_iter()
        .map(scalar)
        .collect();
    let value = if field.dims.is_empty() {
        values.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(values)
    };
    json!({
        "path": path_text(field),
        "type": field.type_text(),
        "primitive": field.primitive.map(|p| p.name()),
        "offset": field.offset,
        "dims": field.dims.iter().map(|(count, stride)| json!([count, stride])).collect::<Vec<_>>(),
        "count": field.element_count(),
        "value": value,
    })
}

/// A queue's state.
pub fn queue(queue: &QueueInfo) -> Value {
    json!({
        "mode": queue_mode(queue.mode),
        "capacity": queue.capacity,
        "len": queue.len,
        "closed": queue.closed,
        "byte_channel": queue.byte_channel,
    })
}

/// A byte channel's geometry and state (`inspect --json`'s `channel`): the SPSC role
/// holders' pids are null when none is recorded (always in MPMC mode).
pub fn channel(channel: &ChannelInfo) -> Value {
    json!({
        "mode": queue_mode(channel.mode),
        "capacity": channel.capacity,
        "max_message": channel.max_message,
        "used_bytes": channel.used_bytes,
        "closed": channel.closed,
        "producer_pid": channel.producer_pid,
        "consumer_pid": channel.consumer_pid,
    })
}

/// `spsc` or `mpmc`.
pub fn queue_mode(mode: QueueMode) -> &'static str {
    match mode {
        QueueMode::Spsc => "spsc",
        QueueMode::Mpmc => "mpmc",
    }
}

/// Every header field (FORMAT.md), flags decoded.
pub fn header(view: &Inspector) -> Value {
    let h = view.header_fields();
    let mut map = Map::new();
    map.insert("magic".into(), "SHMSTORE".into());
    map.insert("format_version".into(), h.format_version.into());
    map.insert("header_size".into(), h.header_size.into());
    map.insert("state".into(), h.state.into());
    map.insert(
        "flags".into(),
        json!({
            "bits": h.flags,
            "in_place": h.flags & crate::format::FLAG_IN_PLACE != 0,
            "notify_readers": h.flags & crate::format::FLAG_NOTIFY_READERS != 0,
        }),
    );
    map.insert(
        "fingerprint".into(),
        format!("{:#018x}", h.fingerprint).into(),
    );
    map.insert("payload_offset".into(), h.payload_offset.into());
    map.insert("payload_size".into(), h.payload_size.into());
    map.insert("payload_align".into(), h.payload_align.into());
    map.insert("region_size".into(), h.region_size.into());
    map.insert("descriptor_offset".into(), h.descriptor_offset.into());
    map.insert("descriptor_len".into(), h.descriptor_len.into());
    map.insert("creator_pid".into(), h.creator_pid.into());
    map.insert("mutex_size".into(), h.mutex_size.into());
    map.insert(
        "boot_id".into(),
        crate::format::boot_id_text(&h.boot_id).into(),
    );
    map.insert("kind".into(), h.kind.into());
    map.insert("queue_mode".into(), h.queue_mode.into());
    map.insert("queue_capacity".into(), h.queue_capacity.into());
    map.insert("queue_element_size".into(), h.queue_element_size.into());
    map.insert("version".into(), h.version.into());
    map.insert("waiters".into(), h.waiters.into());
    map.insert("poisoned".into(), h.poisoned.into());
    map.insert("commit_in_progress".into(), h.commit_in_progress.into());
    map.insert("read_requests".into(), h.read_requests.into());
    map.insert("reads_served".into(), h.reads_served.into());
    map.insert("versions_offset".into(), h.versions_offset.into());
    map.insert("versions_len".into(), h.versions_len.into());
    Value::Object(map)
}
