//! The shim fork server: one small single-threaded process per runtime,
//! `meseta-agentd fork-server --work-dir W`, that forks a shim per container
//! on request, so that the agent does not `exec` its own large binary (the
//! loader's relocations, libc's start-up, argument parsing) for every one.
//!
//! Owns both ends of the protocol: [`ForkServer`] in the agent, [`serve`]
//! in the server. It must not know what a shim does: the forked child runs
//! [`crate::shim::run`], exactly what `meseta-agentd shim` runs.
//!
//! # Protocol
//! A `SOCK_SEQPACKET` socket pair; the server's end is its stdin. A request
//! is one message, the container's id, carrying two descriptors: the write
//! end of the pipe that becomes the shim's stdout (its reports to the agent)
//! and the shim's log file (its stderr). The server forks; the child becomes
//! the shim (its stdin `/dev/null`); the server answers with one message,
//! the shim's pid in decimal.
//!
//! # Guarantees
//! - The server never starts a thread, so forking it is safe; its child
//!   starts with the signal mask and dispositions of a freshly executed shim
//!   and no descriptor but 0, 1 and 2.
//! - Shims outlive the server and the agent: each leaves the server's
//!   session at once (see [`crate::shim`]), and when the agent's end closes
//!   (the agent exited or dropped its runtime) the server exits without
//!   touching them; they are re-parented and found again through their
//!   records, as before.
//! - The server reaps its shims as they end, so their CPU time lands in its
//!   own children's times (and in the agent's once the server is reaped).

use std::ffi::OsStr;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, fork, ForkResult};

/// The hidden subcommand that runs [`serve`].
pub const SUBCOMMAND: &str = "fork-server";

/// Longest request or answer, in bytes (a container id is far shorter).
const MAX_MESSAGE: usize = 1024;

/// The agent's handle on a running fork server.
#[derive(Debug)]
pub(crate) struct ForkServer {
    socket: OwnedFd,
    /// The server process (taken when dropped).
    child: Option<Child>,
}

impl ForkServer {
    /// Starts `binary fork-server --work-dir <work_dir>`, its stderr to `log`.
    pub(crate) fn spawn(binary: &Path, work_dir: &Path, log: std::fs::File) -> std::io::Result<ForkServer> {
        let (ours, theirs) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(io)?;
        let mut command = Command::new(binary);
        command
            .arg(SUBCOMMAND)
            .arg("--work-dir")
            .arg(work_dir)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = command.spawn()?;
        // `command` holds the server's end: close it here, so the server alone has it.
        drop(command);
        Ok(ForkServer { socket: ours, child: Some(child) })
    }

    /// Whether the server process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Asks for a shim of container `id` with `stdout` and `stderr`; returns its pid.
    pub(crate) fn fork_shim(&self, id: &str, stdout: BorrowedFd<'_>, stderr: BorrowedFd<'_>) -> std::io::Result<u32> {
        let fds = [stdout.as_raw_fd(), stderr.as_raw_fd()];
        let sent = sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(id.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io)?;
        if sent != id.len() {
            return Err(std::io::Error::other("the fork server took part of the request"));
        }
        let mut buf = [0u8; MAX_MESSAGE];
        let n = loop {
            match nix::sys::socket::recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(io)?,
            }
        };
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the fork server exited"));
        }
        let answer = std::str::from_utf8(&buf[..n]).unwrap_or_default();
        answer.parse().map_err(|_| std::io::Error::other(format!("the fork server answered {answer:?}")))
    }
}

impl Drop for ForkServer {
    /// Closes the agent's end (the server then exits) and reaps the server
    /// without waiting for it.
    fn drop(&mut self) {
        let _ = nix::sys::socket::shutdown(self.socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(mut child) = self.child.take() {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::spawn(move || child.wait());
            }
        }
    }
}

fn io(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// The server: serves requests on stdin until the agent's end closes;
/// returns its exit status. Forked shims run `crate::shim::run(work_dir, id)`.
pub fn serve(work_dir: &Path) -> i32 {
    match serve_inner(work_dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fork-server: {e}");
            1
        }
    }
}

fn serve_inner(work_dir: &Path) -> Result<(), String> {
    let socket = stdin_socket();
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(|e| format!("blocking SIGCHLD: {e}"))?;
    let sigchld = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    loop {
        let (request, ended) = {
            let mut fds =
                [PollFd::new(socket.as_fd(), PollFlags::POLLIN), PollFd::new(sigchld.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
                Ok(_) => {}
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if ended {
            while let Ok(Some(_)) = sigchld.read_signal() {}
            reap();
        }
        if request && !handle(&socket, &sigchld, work_dir)? {
            return Ok(());
        }
    }
}

#[allow(unsafe_code)]
fn stdin_socket() -> OwnedFd {
    // SAFETY: fd 0 is the socket the agent passed as stdin; this process
    // owns it from here on and never closes it elsewhere.
    unsafe { OwnedFd::from_raw_fd(0) }
}

/// Reaps every shim that has ended.
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Serves one request; `false` once the agent's end is closed.
fn handle(socket: &OwnedFd, sigchld: &SignalFd, work_dir: &Path) -> Result<bool, String> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let (len, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => return Ok(true),
            other => other.map_err(|e| format!("recvmsg: {e}"))?,
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(|e| format!("control message: {e}"))? {
            if let ControlMessageOwned::ScmRights(rights) = cmsg {
                fds.extend(rights.into_iter().map(owned));
            }
        }
        (msg.bytes, fds)
    };
    if len == 0 && fds.is_empty() {
        return Ok(false);
    }
    let [stdout, stderr] = <[OwnedFd; 2]>::try_from(fds).map_err(|f| format!("{} descriptors, not 2", f.len()))?;
    let id = OsStr::from_bytes(&buf[..len]).to_string_lossy().into_owned();
    match fork_child() {
        Ok(ForkResult::Child) => {
            let code = become_shim(socket, sigchld, stdout, stderr, work_dir, &id);
            std::process::exit(code);
        }
        Ok(ForkResult::Parent { child }) => {
            drop((stdout, stderr));
            let answer = child.as_raw().to_string();
            let _ = nix::sys::socket::send(socket.as_raw_fd(), answer.as_bytes(), MsgFlags::MSG_NOSIGNAL);
            Ok(true)
        }
        Err(e) => {
            // Closing the descriptors tells the agent: the shim's pipe ends without a report.
            drop((stdout, stderr));
            let _ = nix::sys::socket::send(socket.as_raw_fd(), format!("fork: {e}").as_bytes(), MsgFlags::MSG_NOSIGNAL);
            Ok(true)
        }
    }
}

#[allow(unsafe_code)]
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: a descriptor just received with SCM_RIGHTS belongs to this process alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[allow(unsafe_code)]
fn fork_child() -> nix::Result<ForkResult> {
    // SAFETY: the fork server never starts a thread (see the module docs),
    // so the child may allocate and run arbitrary code.
    unsafe { fork() }
}

/// In the forked child: sets up what a freshly executed shim would have,
/// then runs it.
fn become_shim(
    socket: &OwnedFd,
    sigchld: &SignalFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    work_dir: &Path,
    id: &str,
) -> i32 {
    // Closed below with every other descriptor of the server's: never dropped here.
    let (stdout, stderr) = (stdout.into_raw_fd(), stderr.into_raw_fd());
    let _ = (socket, sigchld);
    let setup = || -> nix::Result<()> {
        let null = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty())?;
        dup2(null, 0)?;
        dup2(stdout, 1)?;
        dup2(stderr, 2)?;
        // Nothing of the server's stays open: its socket, its signalfd, the received copies.
        close_from(3);
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
    };
    if let Err(e) = setup() {
        eprintln!("fork-server: preparing the shim of {id}: {e}");
        return 1;
    }
    crate::shim::run(work_dir, id)
}

/// Closes every descriptor from `first` on.
#[allow(unsafe_code)]
fn close_from(first: u32) {
    // SAFETY: close_range only closes descriptors; those above 2 belong to
    // the server, which this child no longer is (Rust objects holding them
    // are never used again and are not dropped: the child exits).
    unsafe {
        nix::libc::syscall(nix::libc::SYS_close_range, first, u32::MAX, 0);
    }
}
