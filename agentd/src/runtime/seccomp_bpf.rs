//! The tasks' seccomp filter compiled once per work dir, and installed by
//! the container's first process just before it executes the task.
//!
//! libcontainer compiles an OCI `linux.seccomp` profile with libseccomp in
//! every container's init process: about 4–5 ms of CPU per start for the
//! allow-list of [`super::seccomp`], a quarter of the whole start. The
//! profile is the same for every task, so [`LinuxRuntime`](super::linux::LinuxRuntime)
//! compiles it here to classic BPF once, when it opens its work dir, and keeps
//! the program in `<work>/seccomp/<hash>.bpf` (the hash of the profile, so an
//! agent with another profile never uses a stale program). A container's
//! `config.json` then carries the program's path in the annotation
//! [`ANNOTATION`] instead of the profile, and its shim hands the program to
//! [`FilterExecutor`], which installs it in the container's init right
//! before `execve`: later than libcontainer would (no system call of the
//! runtime's own runs under it), and the task never runs unfiltered — the
//! start fails if the program cannot be read or installed.
//!
//! It must not decide what the profile allows (that is [`super::seccomp`]).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, Spec};
use serde_json::Value;

use super::RuntimeError;

/// The `config.json` annotation naming the compiled filter of a container.
pub const ANNOTATION: &str = "org.meseta.seccomp.bpf";

/// One classic BPF instruction (`struct sock_filter`), in bytes.
const INSTRUCTION: usize = 8;

/// Compiles `profile` (an OCI `linux.seccomp` object) into `<dir>/<hash>.bpf`
/// unless that file exists already; returns its path.
pub(crate) fn compile_cached(dir: &Path, profile: &Value) -> Result<PathBuf, RuntimeError> {
    let text = profile.to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let path = dir.join(format!("{:016x}.bpf", hasher.finish()));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
    let seccomp: LinuxSeccomp = serde_json::from_value(profile.clone())
        .map_err(|e| RuntimeError::Unavailable(format!("the seccomp profile is not OCI: {e}")))?;
    let ctx = filter(&seccomp).map_err(|e| RuntimeError::Unavailable(format!("compiling the seccomp profile: {e}")))?;
    // A temporary file per process: two runtimes opening one work dir never write the same one.
    let tmp = path.with_extension(format!("bpf.{}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| RuntimeError::io(&tmp, e))?;
    ctx.export_bpf(&file)
        .map_err(|e| RuntimeError::io(&tmp, std::io::Error::other(format!("exporting the seccomp filter: {e}"))))?;
    file.sync_all().map_err(|e| RuntimeError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::io(&path, e))?;
    Ok(path)
}

/// The libseccomp filter of `seccomp`, translated the way libcontainer
/// translates it (same actions, operators and `MASKED_EQ` reading), minus
/// what the profile of [`super::seccomp`] never uses (notify, flags).
fn filter(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext, String> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| e.to_string())?;
    for &a in seccomp.architectures().iter().flatten() {
        ctx.add_arch(arch(a)?).map_err(|e| format!("architecture {a:?}: {e}"))?;
    }
    // The init process sets no_new_privs itself (the spec asks for it); the filter must not.
    ctx.set_ctl_nnp(false).map_err(|e| e.to_string())?;
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            // A name this libseccomp does not know is skipped, as libcontainer does.
            let Ok(sc) = ScmpSyscall::from_name(name) else { continue };
            let compares: Vec<ScmpArgCompare> = rule
                .args()
                .iter()
                .flatten()
                .map(|a| ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value_two()), a.value()))
                .collect();
            // Each argument may be compared once per rule: one rule per comparison otherwise.
            let mut indexes: Vec<u32> = rule.args().iter().flatten().map(|a| a.index() as u32).collect();
            indexes.sort_unstable();
            indexes.dedup();
            let added = if compares.is_empty() {
                ctx.add_rule(act, sc).map(drop)
            } else if indexes.len() == compares.len() {
                ctx.add_rule_conditional(act, sc, &compares).map(drop)
            } else {
                compares.iter().try_for_each(|c| ctx.add_rule_conditional(act, sc, std::slice::from_ref(c)).map(drop))
            };
            added.map_err(|e| format!("rule for {name}: {e}"))?;
        }
    }
    Ok(ctx)
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    let errno = errno.map_or(nix::libc::EPERM, |e| e as i32);
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        other => return Err(format!("action {other:?} is not supported in a precompiled filter")),
    })
}

fn op(op: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

fn arch(arch: Arch) -> Result<ScmpArch, String> {
    Ok(match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchArm => ScmpArch::Arm,
        other => return Err(format!("architecture {other:?} is not supported")),
    })
}

/// Reads a compiled filter, checking that it is whole BPF instructions.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    let bpf = std::fs::read(path).map_err(|e| format!("seccomp filter {}: {e}", path.display()))?;
    if bpf.is_empty() || bpf.len() % INSTRUCTION != 0 || bpf.len() / INSTRUCTION > u16::MAX as usize {
        return Err(format!("seccomp filter {}: {} bytes are not a BPF program", path.display(), bpf.len()));
    }
    Ok(bpf)
}

/// libcontainer's default executor (`execvp` of the process' args), with
/// the compiled seccomp filter installed just before it.
#[derive(Clone)]
pub(crate) struct FilterExecutor {
    /// The BPF program (see [`read`]); `None`: no filter.
    pub(crate) bpf: Option<std::sync::Arc<Vec<u8>>>,
}

impl Executor for FilterExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(bpf) = &self.bpf {
            install(bpf).map_err(|e| ExecutorError::Other(format!("installing the seccomp filter: {e}")))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    fn setup_envs(&self, envs: std::collections::HashMap<String, String>) -> Result<(), ExecutorSetEnvsError> {
        DefaultExecutor {}.setup_envs(envs)
    }
}

/// Installs BPF program `bpf` as this thread's seccomp filter
/// (`seccomp(SECCOMP_SET_MODE_FILTER)`; needs no_new_privs or CAP_SYS_ADMIN).
#[allow(unsafe_code)]
fn install(bpf: &[u8]) -> std::io::Result<()> {
    use nix::libc;
    let prog =
        libc::sock_fprog { len: (bpf.len() / INSTRUCTION) as u16, filter: bpf.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points at `bpf`, whole instructions (checked by `read`),
    // alive for the call; the kernel copies the program and validates it.
    let rc =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_compiles_once_into_whole_instructions_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let profile = super::super::seccomp::profile();
        let path = compile_cached(dir.path(), &profile).unwrap();
        let bpf = read(&path).unwrap();
        assert!(bpf.len() / INSTRUCTION > 100, "an allow-list of ~290 calls: {} instructions", bpf.len() / 8);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(compile_cached(dir.path(), &profile).unwrap(), path);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified, "not compiled again");
        let mut other = profile.clone();
        other["defaultErrnoRet"] = serde_json::json!(13);
        assert_ne!(compile_cached(dir.path(), &other).unwrap(), path, "another profile, another program");
    }

    #[test]
    fn a_truncated_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bpf");
        std::fs::write(&path, [0u8; 12]).unwrap();
        assert!(read(&path).unwrap_err().contains("not a BPF program"));
    }
}
