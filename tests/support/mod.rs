//! Shared helpers for the integration tests; include with `mod support;` from a test file.

pub mod control_plane;
pub mod operator;
pub mod scale;
pub mod sim_process;
pub mod tools;
pub mod world;

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the kernel kill the child (SIGKILL) when the thread that spawns it ends, so servers
/// started by a test never outlive it, even when the test binary is killed. Note: the signal
/// follows the spawning *thread*, so spawn from a thread that lives as long as the child.
pub fn die_with_spawning_thread(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect; then nobody would kill us.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
