//! `shmstore list`: one row per object in `/dev/shm`, regions or not, then one per System V
//! segment that is a shmstore region. File regions can be anywhere: they are not searched for.

use std::io::Write;

use serde_json::{json, Value};

use crate::failure::Outcome;
use crate::fields::table;
use crate::scan::{self, mode_text, Backend, Entry, Kind, Users};
use crate::{json, procs};

/// Prints every object in `/dev/shm` and every System V region, as a table or a JSON array.
pub fn run(as_json: bool, out: &mut dyn Write) -> Outcome {
    let mut entries = scan::all()?;
    entries.extend(scan::segment_regions()?);
    let users = Users::load();
    let rows: Vec<Row> = entries.iter().map(|e| Row::of(e, &users)).collect();
    if as_json {
        let array: Vec<Value> = rows.iter().map(Row::to_json).collect();
        writeln!(out, "{}", crate::json::pretty(&Value::Array(array)))?;
    } else if rows.is_empty() {
        writeln!(
            out,
            "no objects in {} and no System V regions (file regions are not searched for: \
             pass a path to `shmstore inspect`)",
            scan::SHM_DIR
        )?;
    } else {
        let mut cells = vec![[
            "NAME",
            "BACKEND",
            "KIND",
            "TYPE",
            "SIZE",
            "LEN",
            "VERSION",
            "CREATOR",
            "POISONED",
            "MODE",
            "OWNER",
            "CREATED BY",
        ]
        .map(String::from)
        .to_vec()];
        cells.extend(rows.iter().map(Row::cells));
        out.write_all(table(&cells).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// What one row says, shared by the table and the JSON.
struct Row {
    name: String,
    backend: Backend,
    kind: Kind,
    type_name: Option<String>,
    /// The type's size: the value's, or one queue element's.
    size: Option<usize>,
    object_size: u64,
    queue: Option<shmstore::QueueInfo>,
    version: Option<u64>,
    in_place: Option<bool>,
    poisoned: Option<bool>,
    creator_pid: Option<u32>,
    creator_alive: Option<bool>,
    mode: u32,
    uid: u32,
    owner: String,
    /// A System V segment's creator (`cuid`): the owner can be given away, the creator not.
    creator_uid: Option<u32>,
    creator_user: Option<String>,
    note: Option<String>,
}

impl Row {
    fn of(entry: &Entry, users: &Users) -> Row {
        let info = entry.view.as_ref().map(|v| v.info());
        let boot_id = entry.view.as_ref().map(|v| v.header_fields().boot_id);
        let creator_alive = entry
            .creator_pid
            .map(|pid| procs::creator_alive(pid, boot_id));
        Row {
            name: entry.name.clone(),
            backend: entry.backend(),
            kind: entry.kind,
            type_name: info.as_ref().map(|i| i.type_name.clone()),
            size: info.as_ref().map(|i| i.size),
            object_size: entry.object.size,
            queue: info.as_ref().and_then(|i| i.queue.clone()),
            // A queue has no versions: its elements are the news.
            version: info
                .as_ref()
                .filter(|i| i.queue.is_none())
                .map(|i| i.version),
            in_place: info.as_ref().map(|i| i.in_place),
            poisoned: info.as_ref().map(|i| i.poisoned),
            creator_pid: entry.creator_pid,
            creator_alive,
            mode: entry.object.mode,
            uid: entry.object.uid,
            owner: users.name(entry.object.uid),
            creator_uid: entry.creator_uid,
            creator_user: entry.creator_uid.map(|uid| users.name(uid)),
            note: entry.reason.clone(),
        }
    }

    fn cells(&self) -> Vec<String> {
        let dash = || "-".to_string();
        let size = match (&self.queue, self.size) {
            (Some(q), Some(_)) if q.byte_channel => format!("{} B ring", q.capacity),
            (Some(q), Some(size)) => format!("{size} B x {}", q.capacity),
            (None, Some(size)) => format!("{size} B"),
            // Not a readable region: the object's own size.
            _ => format!("({} B)", self.object_size),
        };
        let len = self.queue.as_ref().map_or_else(dash, |q| {
            let unit = if q.byte_channel { " B" } else { "" };
            format!("{}{unit}{}", q.len, if q.closed { " closed" } else { "" })
        });
        let creator = match (self.creator_pid, self.creator_alive) {
            (Some(pid), Some(true)) => format!("{pid} alive"),
            (Some(pid), _) => format!("{pid} dead"),
            (None, _) => dash(),
        };
        let poisoned = match (self.kind, self.poisoned) {
            (Kind::Value, Some(p)) => if p { "yes" } else { "no" }.to_string(),
            _ => dash(),
        };
        vec![
            shmstore::printable(&self.name).into_owned(),
            self.backend.as_str().to_string(),
            self.kind.as_str().to_string(),
            self.type_name
                .as_deref()
                .map_or_else(dash, |t| shmstore::printable(t).into_owned()),
            size,
            len,
            self.version.map_or_else(dash, |v| v.to_string()),
            creator,
            poisoned,
            mode_text(self.mode),
            self.owner.clone(),
            self.creator_user.clone().unwrap_or_else(dash),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "backend": self.backend.as_str(),
            "kind": self.kind.as_str(),
            "type": self.type_name,
            "size": self.size,
            "object_size": self.object_size,
            "queue": self.queue.as_ref().map(json::queue),
            "version": self.version,
            "in_place": self.in_place,
            "poisoned": self.poisoned,
            "creator_pid": self.creator_pid,
            "creator_alive": self.creator_alive,
            "mode": mode_text(self.mode),
            "uid": self.uid,
            "owner": self.owner,
            "creator_uid": self.creator_uid,
            "created_by": self.creator_user,
            "note": self.note,
        })
    }
}
