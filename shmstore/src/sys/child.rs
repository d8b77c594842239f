//! A forked child process judged by how it ended: for the fuzzing target that shrinks a region
//! under a process using it (`fuzzing::truncate_while_operating`), whose expected outcome is
//! sometimes a death by SIGBUS, which only another process can survive to report.

use std::io;

use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Killed(Signal),
}

/// Forks. The child restores the default action of the signals that end a process abnormally,
/// arms an alarm of `watchdog_secs` (so a child that hangs dies of SIGALRM instead of hanging
/// its parent), runs `body` and leaves with `_exit(body())`, running no exit handlers and no
/// destructors of the parent's state. Returns the child's pid in the parent.
///
/// # Safety
///
/// If the calling process has other threads, `body` must not need a lock that another thread
/// may have held at the moment of the fork (the child has only the calling thread, and such a
/// lock stays held for ever in it): glibc resets its `malloc` locks in the child, so
/// allocating is fine; printing through `std`'s stdout or stderr is not.
pub(crate) unsafe fn fork_child(watchdog_secs: u32, body: impl FnOnce() -> i32) -> io::Result<u32> {
    // SAFETY: the caller guarantees that the child's `body` needs no lock another thread may
    // hold; the parent branch just returns.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child.as_raw() as u32),
        ForkResult::Child => {
            // The parent judges the child by the signal that ended it: a handler inherited
            // from the parent (a fuzzer's "deadly signal" report, its timeout alarm) would
            // turn that signal into an exit status.
            for fatal in [
                Signal::SIGBUS,
                Signal::SIGSEGV,
                Signal::SIGILL,
                Signal::SIGFPE,
                Signal::SIGABRT,
                Signal::SIGALRM,
            ] {
                // SAFETY: installing the default action runs no code of ours in a handler.
                let _ = unsafe { signal(fatal, SigHandler::SigDfl) };
            }
            nix::unistd::alarm::set(watchdog_secs);
            let status = body();
            // SAFETY: `_exit` ends the process at once; nothing after it runs.
            unsafe { nix::libc::_exit(status) }
        }
    }
}

/// Ends this process at once with `status` (`_exit`): no exit handlers, no destructors, no
/// unwinding. For a forked child that must stop in the middle of a protocol, as a killed
/// process would (the migration's crash tests).
#[cfg(test)]
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` ends the process at once; nothing after it runs.
    unsafe { nix::libc::_exit(status) }
}

/// Waits for the child `pid` (from [`fork_child`]) to end, and says how.
pub(crate) fn wait_child(pid: u32) -> io::Result<Ended> {
    loop {
        match waitpid(Pid::from_raw(pid as i32), None) {
            Ok(WaitStatus::Exited(_, status)) => return Ok(Ended::Exited(status)),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(Ended::Killed(signal)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
