//! Detaching `warren-wg` from its caller the way wg-quick expects: the command that started it
//! returns only once the interface and its UAPI socket are ready (wg-quick runs `wg setconf`
//! right after), with status 0, or non-zero with the reason the daemon gave.
//!
//! How: [`fork`] before any thread exists, with a close-on-exec pipe between the two processes.
//! The parent waits on the pipe; the daemon [`detach`]es (new session, `/` as working directory,
//! stdio to `/dev/null` unless kept), sets up, and writes one byte on [`Readiness::ready`] or its
//! error text on [`Readiness::failed`]. End of file with nothing written means the daemon died
//! first. (wireguard-go re-executes itself with its sockets as inherited descriptors instead;
//! forking a process that has no threads yet gets the same result without a second start.)

use anyhow::Context as _;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};

/// The byte that says "ready".
const READY: u8 = 0;

/// Which side of [`fork`] this is.
pub enum Fork {
    /// The process that was started: its outcome is the daemon's readiness.
    Parent(anyhow::Result<()>),
    /// The daemon: it must [`detach`] and then report through its [`Readiness`].
    Daemon(Readiness),
}

/// The daemon's end of the pipe; nothing for a foreground process.
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// A process that did not fork: nobody waits.
    pub fn foreground() -> Self {
        Self { pipe: None }
    }

    /// Tells the parent the interface is served; it exits 0.
    pub fn ready(&mut self) -> anyhow::Result<()> {
        if let Some(mut pipe) = self.pipe.take() {
            pipe.write_all(&[READY])
                .context("failed to tell the starting process that the interface is ready")?;
        }
        Ok(())
    }

    /// Tells the parent why the daemon gives up, if it is still waiting (it prints the reason
    /// and exits 1).
    pub fn failed(&mut self, error: &anyhow::Error) {
        if let Some(mut pipe) = self.pipe.take() {
            let text = format!("{error:#}");
            // The parent is waiting; if it is gone, nobody is left to tell.
            let _ = pipe.write_all(if text.is_empty() {
                b"failed".as_slice()
            } else {
                text.as_bytes()
            });
        }
    }
}

/// Forks. Must be called while the process has a single thread.
pub fn fork() -> anyhow::Result<Fork> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("failed to create a pipe");
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller guarantees a single-threaded process, so the child's copy of memory is
    // consistent (no lock is held by a thread that does not exist in the child).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()).context("failed to fork the daemon"),
        0 => {
            drop(read);
            Ok(Fork::Daemon(Readiness {
                pipe: Some(File::from(write)),
            }))
        }
        child => {
            drop(write);
            Ok(Fork::Parent(wait_for_daemon(File::from(read), child)))
        }
    }
}

/// The parent's side: what the daemon wrote before closing the pipe.
fn wait_for_daemon(mut pipe: File, child: libc::pid_t) -> anyhow::Result<()> {
    let mut said = Vec::new();
    pipe.read_to_end(&mut said)
        .context("failed to wait for the daemon")?;
    match said.as_slice() {
        [READY] => Ok(()),
        [] => {
            let mut status = 0;
            // SAFETY: `child` is our child process and `status` a valid int to fill.
            let reaped = unsafe { libc::waitpid(child, &mut status, 0) } == child;
            let how = if reaped && libc::WIFEXITED(status) {
                format!("with status {}", libc::WEXITSTATUS(status))
            } else if reaped && libc::WIFSIGNALED(status) {
                format!("on signal {}", libc::WTERMSIG(status))
            } else {
                "unexpectedly".to_owned()
            };
            anyhow::bail!("the daemon exited {how} before the interface was ready")
        }
        text => anyhow::bail!("{}", String::from_utf8_lossy(text)),
    }
}

/// The daemon's side, right after [`fork`]: a new session without a controlling terminal, `/`
/// as working directory (no mount is kept busy), stdin from `/dev/null` and stdout and stderr
/// too unless `keep_output`.
pub fn detach(keep_output: bool) -> anyhow::Result<()> {
    // SAFETY: setsid has no memory-safety preconditions; the child of fork is never a process
    // group leader, so it succeeds.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error()).context("failed to start a new session");
    }
    std::env::set_current_dir("/").context("failed to change directory to /")?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("failed to open /dev/null")?;
    let targets: &[libc::c_int] = if keep_output { &[0] } else { &[0, 1, 2] };
    for &target in targets {
        // SAFETY: dup2 onto a standard descriptor; `null` stays open for the call.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), target) } == -1 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("failed to redirect descriptor {target} to /dev/null"));
        }
    }
    Ok(())
}
