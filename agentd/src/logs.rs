//! Reading a task's stdout / stderr from its sandbox, safely.
//!
//! Owns the rule that a log request can only ever read
//! `<work>/sandboxes/<ns>/<name>/{stdout,stderr}`: names are validated as DNS
//! subdomains (no `/`, no `..`), the stream is one of two fixed names, and
//! the resolved path must still lie under the resolved sandboxes root (no
//! symlink escapes). It must not serve anything else.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::runtime::ContainerId;

/// Why a log cannot be served.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogError {
    /// The request names something that is not a task's log.
    #[error("{0}")]
    Invalid(String),
    /// No such log on this agent.
    #[error("{0}")]
    NotFound(String),
}

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The task's standard output.
    Stdout,
    /// The task's standard error.
    Stderr,
}

impl Stream {
    /// Parses `stdout` / `stderr` (empty: stdout).
    pub fn parse(s: Option<&str>) -> Result<Stream, LogError> {
        match s.unwrap_or("stdout") {
            "" | "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            other => Err(LogError::Invalid(format!("stream {other:?}: must be stdout or stderr"))),
        }
    }

    fn file(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file of task `ns/name` under `work_dir`, checked to lie inside the sandboxes.
pub fn log_path(work_dir: &Path, ns: &str, name: &str, stream: Stream) -> Result<PathBuf, LogError> {
    let id = ContainerId::new(ns, name).map_err(|e| LogError::Invalid(e.to_string()))?;
    if [ns, name].iter().any(|p| p.contains("..")) {
        return Err(LogError::Invalid("names must not contain \"..\"".into()));
    }
    let root = work_dir.join("sandboxes");
    let path = root.join(id.namespace()).join(id.name()).join(stream.file());
    let not_found = || LogError::NotFound(format!("no {} log for task {ns}/{name} on this agent", stream.file()));
    let real_root = root.canonicalize().map_err(|_| not_found())?;
    let real = path.canonicalize().map_err(|_| not_found())?;
    if !real.starts_with(&real_root) || !real.is_file() {
        return Err(LogError::Invalid(format!("the log of {ns}/{name} resolves outside the sandboxes")));
    }
    Ok(real)
}

/// The byte offset where the last `n` lines of `path` begin.
pub fn tail_offset(path: &Path, n: usize) -> std::io::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut newlines = 0usize;
    let mut buf = vec![0u8; 8192];
    // A trailing newline ends the last line; it does not start a new one.
    let mut skip_last = true;
    while pos > 0 {
        let step = (pos as usize).min(buf.len());
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..step])?;
        for i in (0..step).rev() {
            if buf[i] == b'\n' {
                if skip_last && pos + i as u64 == len - 1 {
                    skip_last = false;
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
        skip_last = false;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tasks_own_log_files_can_be_named() {
        let dir = tempfile::tempdir().unwrap();
        let sb = dir.path().join("sandboxes/web/t1");
        std::fs::create_dir_all(&sb).unwrap();
        std::fs::write(sb.join("stdout"), "hi\n").unwrap();
        assert!(log_path(dir.path(), "web", "t1", Stream::Stdout).is_ok());
        assert!(matches!(log_path(dir.path(), "web", "t1", Stream::Stderr), Err(LogError::NotFound(_))));
        for (ns, name) in [("..", "t1"), ("web", ".."), ("web", "../../etc"), ("web/..", "t1"), ("web", "t1/../x")] {
            assert!(matches!(log_path(dir.path(), ns, name, Stream::Stdout), Err(LogError::Invalid(_))), "{ns} {name}");
        }
        assert!(Stream::parse(Some("../../etc/passwd")).is_err());
    }

    #[test]
    fn a_symlink_out_of_the_sandbox_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sb = dir.path().join("sandboxes/web/t1");
        std::fs::create_dir_all(&sb).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", sb.join("stdout")).unwrap();
        assert!(matches!(log_path(dir.path(), "web", "t1", Stream::Stdout), Err(LogError::Invalid(_))));
    }

    #[test]
    fn tail_offset_finds_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(&text[tail_offset(&p, 2).unwrap() as usize..], "b\nc\n");
        assert_eq!(&text[tail_offset(&p, 1).unwrap() as usize..], "c\n");
        assert_eq!(tail_offset(&p, 10).unwrap(), 0);
        std::fs::write(&p, "a\nb").unwrap();
        assert_eq!(tail_offset(&p, 1).unwrap(), 2);
    }
}
