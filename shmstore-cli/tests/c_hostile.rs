//! The generated C against names and peers that would break it (issue 13, points 1 and 14,
//! red-team findings): a region whose type and field names are those of libc typedefs and
//! macros still gives a header that compiles after the system headers, and `shmstore_open`
//! does not block on a name another user squats and holds a write lease on.

mod common;

use std::path::Path;

use common::*;
use shmstore_cli::fuzzing::{check_c_header, encode_descriptor, forged_region};

/// Primitive codes (FORMAT.md).
const U32: u32 = 3;
const U64: u32 = 4;

#[test]
fn names_of_libc_typedefs_and_macros_give_a_header_that_compiles() {
    let (name, _cleanup) = region("c-libc-names");
    // A typedef of <pthread.h>; a macro of <sys/stat.h> (`st_atim.tv_sec`), of <errno.h> and
    // of <sys/mman.h> (numbers).
    let descriptor = encode_descriptor(
        "pthread_mutex_t",
        &[
            ("st_atime", U64, 0, &[]),
            ("EINVAL", U32, 8, &[]),
            ("PROT_WRITE", U32, 12, &[]),
        ],
    );
    let payload: Vec<u8> = (0..16).collect();
    std::fs::write(
        Path::new(SHM_DIR).join(&name),
        forged_region(&descriptor, &payload, 8),
    )
    .unwrap();
    let ran = run(&["header", &name]);
    ran.ok();
    let header = &ran.stdout;
    check_c_header(header).unwrap_or_else(|why| panic!("{why}:\n{header}"));
    assert!(
        header.contains("typedef struct Value {") && !header.contains("struct pthread_mutex_t"),
        "{header}"
    );
    let dir = TempDir::new("c-libc-names");
    let program = "#include <pthread.h>\n#include <sys/stat.h>\n#include <errno.h>\n\
                   #include <sys/mman.h>\n#include \"region.h\"\n\
                   int main(void) {\n\
                   \x20   struct stat st = {0};\n\
                   \x20   pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;\n\
                   \x20   shmstore_payload_t v = {0};\n\
                   \x20   (void)m; (void)v;\n\
                   \x20   return (int)st.st_atime + EINVAL + PROT_WRITE;\n\
                   }\n";
    syntax_check(dir.path(), header, program, &["-D_GNU_SOURCE"])
        .unwrap_or_else(|e| panic!("{e}\n{header}"));
    // The header first, then the system headers: the macros are back after it.
    let after = program.replace(
        "#include <pthread.h>\n",
        "#include \"region.h\"\n#include <pthread.h>\n",
    );
    syntax_check(dir.path(), header, &after, &["-D_GNU_SOURCE"])
        .unwrap_or_else(|e| panic!("{e}\n{header}"));
    // The program's own macro of a name of the type does not break it either.
    let own = format!("#define Value 1\n#define st_atime 2\n{program}");
    syntax_check(dir.path(), header, &own, &["-D_GNU_SOURCE"])
        .unwrap_or_else(|e| panic!("{e}\n{header}"));
}

/// `tests/c/hold_lease.c` running: uid 65534 created the object and holds a write lease on
/// it, ignoring the signal that asks it to let go. Killed (by its pid) when dropped.
struct LeaseHolder(std::process::Child);

impl LeaseHolder {
    fn start(dir: &Path, name: &str) -> LeaseHolder {
        use std::io::BufRead;
        let program = compile_c(&c_dir().join("hold_lease.c"), dir, &dir.join("hold_lease"))
            .unwrap_or_else(|e| panic!("hold_lease.c does not compile:\n{e}"));
        let mut child = std::process::Command::new(program)
            .arg(name)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let holder = LeaseHolder(child);
        assert_eq!(line.trim(), "ready", "hold_lease did not take its lease");
        holder
    }
}

impl Drop for LeaseHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_write_lease_on_a_squatted_name_is_named_and_never_waited_out() {
    let (ours, _ours) = region("c-lease-ours");
    let (squatted, _squatted) = region("c-lease-squatted");
    let _shm = shmstore::Shm::<Sample>::create(&ours, sample()).unwrap();
    let dir = TempDir::new("c-lease");
    run(&[
        "header",
        &ours,
        "-o",
        dir.path().join("region.h").to_str().unwrap(),
    ])
    .ok();
    let check_owner = compile_c(
        &c_dir().join("check_owner.c"),
        dir.path(),
        &dir.path().join("check_owner"),
    )
    .unwrap_or_else(|e| panic!("check_owner.c does not compile:\n{e}"));
    let _holder = LeaseHolder::start(dir.path(), &squatted);

    // The generated C: a blocking open would wait out lease-break-time (45 s) and then find
    // another user's object; this one returns at once and says why.
    let opened = std::process::Command::new(&check_owner)
        .args(["posix", &squatted])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(
        opened,
        std::time::Duration::from_secs(30),
        "check_owner on a leased object",
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.starts_with("another process holds a lease on the object"),
        "{said}"
    );

    // The library opens without blocking already; its error names the lease and the owner.
    let error = shmstore::Shm::<Sample>::open(&squatted).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("holds a lease on the object") && message.contains("uid 65534"),
        "{message}"
    );
}
