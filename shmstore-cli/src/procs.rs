//! What `/proc` says about processes: whether a creator is alive, which processes use which
//! object in `/dev/shm`, and whether `/proc` shows every process on the host at all.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::scan::SHM_DIR;

/// Whether a process with this pid exists and has not exited: a zombie (state `Z`, exited
/// but not yet reaped by its parent) holds no mapping and no descriptor, so it is dead. A
/// process whose main thread exited while other threads run shows its main thread as a
/// zombie too: it is alive while any of its threads is. A pid can be reused, so "alive" may
/// be another process: callers treat that as alive, the safe side for `gc`.
pub fn alive(pid: u32) -> bool {
    pid != 0 && live_task(pid).is_some()
}

/// The `/proc` directory through which a live process's maps and descriptors are read:
/// `/proc/PID` if its main thread runs, else `/proc/PID/task/TID` of a thread that does (the
/// main thread's own maps and descriptors are gone once it exited). `None` if the process
/// does not exist or every thread of it exited.
fn live_task(pid: u32) -> Option<PathBuf> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    match task_state(&dir) {
        Ok(state) if !exited(state) => return Some(dir),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        // Exists, but we may not look: count it as alive.
        Err(_) => return Some(dir),
    }
    let tasks = fs::read_dir(dir.join("task")).ok()?;
    tasks
        .filter_map(|task| task.ok())
        .map(|task| task.path())
        .find(|task| task_state(task).is_ok_and(|state| !exited(state)))
}

/// `Z` (zombie) and `X` (dead): the thread has exited.
fn exited(state: char) -> bool {
    matches!(state, 'Z' | 'X')
}

/// The state letter of a process or thread: `/proc/…/stat` is `PID (COMMAND) STATE …`, where
/// the command may itself contain `)` and spaces, so the state follows the last `)`.
fn task_state(dir: &Path) -> io::Result<char> {
    let stat = fs::read_to_string(dir.join("stat"))?;
    stat_state(&stat).ok_or_else(|| io::Error::other("unexpected /proc stat line"))
}

fn stat_state(stat: &str) -> Option<char> {
    let (_, after) = stat.rsplit_once(')')?;
    after.trim_start().chars().next()
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

/// The effective uid of this process (`/proc/self/status`, `Uid:` real, effective, …); `None`
/// if it cannot be read.
pub fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The inode of the host's (the initial) PID namespace: a kernel constant
/// (`PROC_PID_INIT_INO` in `include/linux/proc_ns.h`, fixed since Linux 3.19).
const INITIAL_PID_NAMESPACE_INODE: u64 = 0xEFFF_FFFC;

/// Why `/proc` may not show every process on this host, if it may not: this process runs in
/// a PID namespace other than the host's (a container: processes outside it are not in its
/// `/proc`, yet may share `/dev/shm`, as the containers of a Kubernetes pod do), the `/proc`
/// mounted here belongs to another PID namespace, or it is mounted with `hidepid` (which
/// hides the processes this user may not trace). `None` when it shows them all.
pub fn hidden_processes() -> Option<String> {
    // `/proc/self` is this process only in a `/proc` of its own PID namespace (in another
    // one's, it is missing or another pid), and the namespace's inode is the host's only in
    // the host's.
    let own_proc = fs::read_link("/proc/self")
        .ok()
        .and_then(|pid| pid.to_str()?.parse::<u32>().ok())
        == Some(std::process::id());
    if !own_proc {
        return Some(
            "the /proc mounted here is not that of this process's PID namespace".to_string(),
        );
    }
    let namespace = fs::metadata("/proc/self/ns/pid").map(|meta| meta.ino());
    if namespace.ok() != Some(INITIAL_PID_NAMESPACE_INODE) {
        return Some(
            "it runs in a PID namespace other than the host's (a container?), whose /proc \
             does not show the processes outside it"
                .to_string(),
        );
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    proc_hidepid(&mountinfo)
        .map(|value| format!("/proc is mounted with hidepid={value}, which hides processes"))
}

/// The `hidepid=` value of the `/proc` mount in effect (the last one mounted on `/proc` in
/// `/proc/self/mountinfo`), unless it hides nothing (`0`, `off`).
fn proc_hidepid(mountinfo: &str) -> Option<String> {
    // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPER_OPTIONS`
    let line = mountinfo
        .lines()
        .rfind(|line| line.split(' ').nth(4) == Some("/proc"))?;
    let (_, fs_part) = line.split_once(" - ")?;
    let super_options = fs_part.split(' ').nth(2)?;
    let value = super_options
        .split(',')
        .find_map(|option| option.strip_prefix("hidepid="))?;
    (!matches!(value, "0" | "off")).then(|| value.to_string())
}

/// An object's identity as `stat` gives it: (`st_dev`, `st_ino`), as in
/// [`crate::scan::Object::identity`].
pub type Identity = (u64, u64);

/// Which processes use objects in `/dev/shm`, by mapping them (`/proc/PID/maps`) or holding a
/// descriptor on them (`/proc/PID/fd`). Objects are matched by device and inode, never by
/// path: the path the kernel shows is the one the process opened, which for a region's
/// creator is the unnamed `O_TMPFILE` object (`/dev/shm/#1234 (deleted)`, also in the
/// processes it forked), and for a process in another mount namespace a path of its own.
#[derive(Debug, Default)]
pub struct ShmUsers {
    /// Identity → pids that map the object or hold a descriptor on it.
    by_object: HashMap<Identity, BTreeSet<u32>>,
    /// Processes whose maps or descriptors this user may not read (other users' processes,
    /// unless we run as root; more privileged ones even then), with their command names: any
    /// of them might use any object.
    pub unreadable: BTreeMap<u32, String>,
}

impl ShmUsers {
    /// Scans every process but this one (which may hold read-only views of the regions it is
    /// looking at).
    pub fn scan() -> io::Result<ShmUsers> {
        let shm = ShmFiles::now()?;
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
            users.scan_process(pid, &shm);
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

    /// The pids that use the object with this identity.
    pub fn of(&self, identity: Identity) -> Option<&BTreeSet<u32>> {
        self.by_object
            .get(&identity)
            .filter(|pids| !pids.is_empty())
    }

    fn scan_process(&mut self, pid: u32, shm: &ShmFiles) {
        // A zombie uses nothing; a process whose main thread exited is read through a live
        // thread.
        let Some(dir) = live_task(pid) else { return };
        match fs::read_to_string(dir.join("maps")) {
            Ok(maps) => {
                for line in maps.lines() {
                    if let Some(identity) = maps_line_identity(line) {
                        self.add(identity, shm, pid);
                    }
                }
            }
            Err(e) => self.note_error(pid, &e),
        }
        match fs::read_dir(dir.join("fd")) {
            Ok(fds) => {
                for fd in fds.filter_map(|fd| fd.ok()) {
                    // `stat` of the link asks the open object's file system, which for a
                    // stuck FUSE mount can hang: the inode in `fdinfo` (Linux 5.14 on) rules
                    // out every descriptor that cannot be one of /dev/shm's objects first.
                    let fdinfo = dir.join("fdinfo").join(fd.file_name());
                    if fdinfo_inode(&fdinfo).is_some_and(|ino| !shm.inodes.contains(&ino)) {
                        continue;
                    }
                    // `stat` follows the link to the open object itself, named or not. A
                    // descriptor closed meanwhile gives an error: nothing to record.
                    if let Ok(meta) = fs::metadata(fd.path()) {
                        self.add((meta.dev(), meta.ino()), shm, pid);
                    }
                }
            }
            Err(e) => self.note_error(pid, &e),
        }
    }

    fn add(&mut self, identity: Identity, shm: &ShmFiles, pid: u32) {
        if identity.0 == shm.device {
            self.by_object.entry(identity).or_default().insert(pid);
        }
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

/// What identifies the objects in `/dev/shm` when the scan starts (gc judges no object that
/// appears later): only those are recorded.
struct ShmFiles {
    /// The device of the file system of `/dev/shm`.
    device: u64,
    /// The inodes of its objects, from the directory itself (no `stat` of each).
    inodes: HashSet<u64>,
}

impl ShmFiles {
    fn now() -> io::Result<ShmFiles> {
        let device = fs::metadata(SHM_DIR)?.dev();
        let inodes = fs::read_dir(SHM_DIR)?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.ino())
            .collect();
        Ok(ShmFiles { device, inodes })
    }
}

/// The inode of the object a descriptor refers to, from its `/proc/PID/fdinfo/FD` (`ino:`
/// line, Linux 5.14 on); `None` if the kernel does not say or the file cannot be read.
fn fdinfo_inode(path: &Path) -> Option<u64> {
    let fdinfo = fs::read_to_string(path).ok()?;
    fdinfo_inode_of(&fdinfo)
}

fn fdinfo_inode_of(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("ino:"))?
        .trim()
        .parse()
        .ok()
}

/// The identity of the file mapped by one line of `/proc/PID/maps`
/// (`7f12…-7f12… rw-s 00000000 00:1a 1234   /dev/shm/NAME`): the device as hexadecimal
/// `MAJOR:MINOR` and the inode in decimal. `None` for an anonymous mapping (inode 0).
fn maps_line_identity(line: &str) -> Option<Identity> {
    let mut columns = line.split_whitespace().skip(3);
    let (major, minor) = columns.next()?.split_once(':')?;
    let inode = columns.next()?.parse::<u64>().ok()?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    (inode != 0).then(|| (device_number(major, minor), inode))
}

/// `st_dev` for a device's major and minor numbers, as glibc's `makedev` encodes them (the
/// maps file shows the pair, `stat` the encoded number).
fn device_number(major: u64, minor: u64) -> u64 {
    ((major & 0xffff_f000) << 32)
        | ((major & 0x0000_0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0x0000_00ff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_device_and_inode_of_a_maps_line() {
        let line = concat!(
            "7f1c2a400000-7f1c2a401000 rw-s 00000000 00:1a 4242",
            "                       /dev/shm/app.limits"
        );
        assert_eq!(maps_line_identity(line), Some((0x1a, 4242)));
        // The path does not matter: a creator's unnamed object, or another mount namespace's.
        let deleted = "7f1c2a400000-7f1c2a401000 rw-s 00000000 00:1a 4243 /dev/shm/#4243 (deleted)";
        assert_eq!(maps_line_identity(deleted), Some((0x1a, 4243)));
        let anon =
            "7ffd5e1f6000-7ffd5e217000 rw-p 00000000 00:00 0                          [stack]";
        assert_eq!(maps_line_identity(anon), None);
        assert_eq!(
            maps_line_identity("7ffd5e1f6000-7ffd5e217000 rw-p 00000000"),
            None
        );
        assert_eq!(
            maps_line_identity("a-b r--s 0 103:02 77 /data/x"),
            Some(((0x103 << 8) | 2, 77))
        );
    }

    #[test]
    fn reads_the_inode_of_a_descriptor_from_its_fdinfo() {
        let fdinfo = "pos:\t0\nflags:\t0100002\nmnt_id:\t25\nino:\t4242\n";
        assert_eq!(fdinfo_inode_of(fdinfo), Some(4242));
        assert_eq!(
            fdinfo_inode_of("pos:\t0\nflags:\t0100002\nmnt_id:\t25\n"),
            None
        );
    }

    #[test]
    fn device_numbers_are_encoded_as_glibc_does() {
        assert_eq!(device_number(0, 0x1a), 0x1a);
        assert_eq!(device_number(8, 1), 0x801);
        // Large majors and minors: glibc's `makedev(0x12345, 0x6789a)`.
        assert_eq!(device_number(0x12345, 0x6789a), 0x0001_2000_6783_459a);
    }

    #[test]
    fn the_maps_of_this_process_name_the_objects_that_stat_names() {
        let name = format!("shmstore-test-cli-unit-procs-{}", std::process::id());
        let shm = shmstore::Shm::<u64>::create(&name, 7).unwrap();
        let meta = fs::metadata(Path::new(SHM_DIR).join(&name));
        let _ = shmstore::unlink(&name);
        let meta = meta.unwrap();
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            maps.lines()
                .filter_map(maps_line_identity)
                .any(|identity| identity == (meta.dev(), meta.ino())),
            "no mapping of {name} ({}, {}) in\n{maps}",
            meta.dev(),
            meta.ino()
        );
        drop(shm);
    }

    #[test]
    fn reads_the_state_after_the_last_parenthesis() {
        assert_eq!(stat_state("42 (sh) S 1 42 42 0"), Some('S'));
        assert_eq!(stat_state("42 (a) Z (b)) Z 1 0"), Some('Z'));
        assert_eq!(stat_state("42 (unterminated"), None);
    }

    #[test]
    fn finds_hidepid_on_the_proc_mount_in_effect() {
        let host = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    30 22 0:30 / /proc/sys/fs/binfmt_misc rw - binfmt_misc x rw\n";
        assert_eq!(proc_hidepid(host), None);
        let hidden =
            format!("{host}66 22 0:40 / /proc rw,relatime - proc proc rw,hidepid=invisible\n");
        assert_eq!(proc_hidepid(&hidden).as_deref(), Some("invisible"));
        let off = format!("{hidden}67 66 0:41 / /proc rw - proc proc rw,hidepid=off\n");
        assert_eq!(
            proc_hidepid(&off),
            None,
            "the last /proc mount is the one in effect"
        );
        let optional = "66 22 0:40 / /proc rw shared:5 master:1 - proc proc rw,hidepid=2\n";
        assert_eq!(proc_hidepid(optional).as_deref(), Some("2"));
    }

    #[test]
    fn this_process_is_alive_and_pid_0_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(creator_alive(std::process::id(), boot_id()));
        let mut other_boot = boot_id().unwrap_or([1; 16]);
        other_boot[0] ^= 0xff;
        assert!(!creator_alive(std::process::id(), Some(other_boot)));
        assert!(effective_uid().is_some());
    }
}
