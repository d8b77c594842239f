//! What `/proc` says about processes: whether a creator is alive, and which processes use
//! which object in `/dev/shm`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::Path;

use crate::scan::SHM_DIR;

/// Whether a process with this pid exists (`/proc/PID`). A pid can be reused, so "alive" may
/// be another process: callers treat that as alive, the safe side for `gc`.
pub fn alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The kernel's boot id as the 16 bytes the header stores (FORMAT.md `boot_id`), if readable.
pub fn boot_id() -> Option<[u8; 16]> {
    let text = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Whether a region's creator is alive: its pid exists and it was created during this boot.
/// A region whose boot id is another boot's was made by a process that cannot exist any more
/// (only file-backed regions survive a reboot, but the check costs nothing).
pub fn creator_alive(pid: u32, region_boot_id: Option<[u8; 16]>) -> bool {
    if let (Some(region), Some(now)) = (region_boot_id, boot_id()) {
        if region != [0; 16] && region != now {
            return false;
        }
    }
    alive(pid)
}

/// Which processes use objects in `/dev/shm`: by mapping them (`/proc/PID/maps`) or by holding
/// a descriptor on them (`/proc/PID/fd`).
#[derive(Debug, Default)]
pub struct ShmUsers {
    /// Object name → pids using the object currently linked under that name.
    by_name: HashMap<String, BTreeSet<u32>>,
    /// Processes whose maps or descriptors this user may not read (other users' processes,
    /// unless we run as root; more privileged ones even then), with their command names: any
    /// of them might use any object.
    pub unreadable: BTreeMap<u32, String>,
}

impl ShmUsers {
    /// Scans every process but this one (which may hold read-only views of the regions it is
    /// looking at).
    pub fn scan() -> io::Result<ShmUsers> {
        let me = std::process::id();
        let mut users = ShmUsers::default();
        for entry in fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            users.scan_process(pid);
        }
        Ok(users)
    }

    /// `pid 1 (init), pid 812 (sshd)`: the processes this user cannot look into.
    pub fn unreadable_text(&self) -> String {
        let list: Vec<String> = self
            .unreadable
            .iter()
            .map(|(pid, command)| format!("pid {pid} ({command})"))
            .collect();
        list.join(", ")
    }

    /// The pids that use the object now under `name`.
    pub fn of(&self, name: &str) -> Option<&BTreeSet<u32>> {
        self.by_name.get(name).filter(|pids| !pids.is_empty())
    }

    fn scan_process(&mut self, pid: u32) {
        match fs::read_to_string(format!("/proc/{pid}/maps")) {
            Ok(maps) => {
                for line in maps.lines() {
                    if let Some(name) = maps_line_object(line) {
                        self.add(name, pid);
                    }
                }
            }
            Err(e) => self.note_error(pid, &e),
        }
        match fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(fds) => {
                for fd in fds.filter_map(|fd| fd.ok()) {
                    // A descriptor closed meanwhile gives an error: nothing to record.
                    if let Ok(target) = fs::read_link(fd.path()) {
                        if let Some(name) = target.to_str().and_then(shm_object) {
                            self.add(name, pid);
                        }
                    }
                }
            }
            Err(e) => self.note_error(pid, &e),
        }
    }

    fn add(&mut self, name: &str, pid: u32) {
        self.by_name
            .entry(name.to_string())
            .or_default()
            .insert(pid);
    }

    fn note_error(&mut self, pid: u32, e: &io::Error) {
        // A process that exited meanwhile uses nothing; one we may not look into might.
        if e.kind() == io::ErrorKind::PermissionDenied {
            // `comm` is readable by everyone.
            let command = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            self.unreadable.insert(pid, command.trim().to_string());
        }
    }
}

/// The object named by one line of `/proc/PID/maps`
/// (`7f12…-7f12… rw-s 00000000 00:1a 1234   /dev/shm/NAME`), if it maps one in `/dev/shm`.
fn maps_line_object(line: &str) -> Option<&str> {
    // Five columns separated by spaces, then the path after padding.
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.trim_start();
        let end = start.find(' ')?;
        rest = &start[end..];
    }
    shm_object(rest.trim_start())
}

/// `NAME` for `/dev/shm/NAME`. A path ending in ` (deleted)` is an object that was unlinked:
/// it is not the object now under that name (which may be a new one), so it does not count.
fn shm_object(path: &str) -> Option<&str> {
    if path.ends_with(" (deleted)") {
        return None;
    }
    let name = path.strip_prefix(SHM_DIR)?.strip_prefix('/')?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_object_of_a_maps_line_and_ignores_deleted_ones() {
        let line = "7f1c2a400000-7f1c2a401000 rw-s 00000000 00:1a 4242                       /dev/shm/app.limits";
        assert_eq!(maps_line_object(line), Some("app.limits"));
        let deleted = format!("{line} (deleted)");
        assert_eq!(maps_line_object(&deleted), None);
        let anon =
            "7ffd5e1f6000-7ffd5e217000 rw-p 00000000 00:00 0                          [stack]";
        assert_eq!(maps_line_object(anon), None);
        let short = "7ffd5e1f6000-7ffd5e217000 rw-p 00000000 00:00 0";
        assert_eq!(maps_line_object(short), None);
        assert_eq!(
            maps_line_object("a-b r--s 0 00:1a 7 /dev/shm/sub/x"),
            None,
            "not an object of /dev/shm itself"
        );
    }

    #[test]
    fn this_process_is_alive_and_pid_0_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(creator_alive(std::process::id(), boot_id()));
        let mut other_boot = boot_id().unwrap_or([1; 16]);
        other_boot[0] ^= 0xff;
        assert!(!creator_alive(std::process::id(), Some(other_boot)));
    }
}
