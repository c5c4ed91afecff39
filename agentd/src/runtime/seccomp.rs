//! The seccomp profile every task runs under: an allow-list.
//!
//! Any system call not named here fails with `EPERM` (the default action
//! `SCMP_ACT_ERRNO`). What is allowed is what ordinary programs need —
//! shells, coreutils and busybox, interpreters such as python, the start-up
//! of glibc and musl executables, threads, sockets, event loops — grouped
//! below by purpose. What is left out is what a task has no business doing
//! and what widens the kernel's attack surface: loading kernels or modules
//! (`kexec_load`, `init_module`), rebooting, changing the clock, mounting or
//! pivoting filesystems, entering or creating namespaces (`setns`, `unshare`,
//! `clone` with `CLONE_NEW*` flags), tracing or reading other processes
//! (`ptrace`, `process_vm_readv`, `kcmp`, `pidfd_getfd`), BPF and perf events,
//! the kernel keyring, swap, quotas, file handles (`open_by_handle_at`),
//! `userfaultfd`, `io_uring` and the new mount API.
//!
//! Two rules carry conditions:
//! - `clone` is allowed only without namespace flags (checked on its first
//!   argument); `clone3`, whose flags sit in memory a filter cannot read,
//!   fails with `ENOSYS` so that glibc falls back to `clone`.
//! - `personality` is allowed only to query the persona or to set the
//!   ordinary Linux one (with or without `UNAME26`), as some build tools do.
//!
//! Names are those of x86-64 and aarch64; libcontainer skips names the
//! host's libseccomp does not know (`open` on aarch64, `futex_waitv` on an
//! old libseccomp). The filter lists the native architecture only: a
//! program of another ABI of the CPU (32-bit x86 or x32 on x86-64, 32-bit
//! arm on aarch64) is killed at its first system call by libseccomp's
//! bad-architecture action. Those ABIs are a classic way around filters
//! and rare in cluster workloads, and each one added makes libseccomp
//! compile the filter again for it: about 6 ms of CPU per container start
//! on x86-64 with libseccomp 2.5, measured against the whole start's 15 ms.
//!
//! It is pure data: [`profile`] builds the OCI `linux.seccomp` object and
//! must not touch the disk nor decide whether seccomp is used (see
//! `super::linux::seccomp_available`).

use serde_json::{json, Value};

/// `errno` of every call the profile refuses.
const EPERM: u32 = 1;
/// `errno` of `clone3`, so that libcs fall back to `clone`.
const ENOSYS: u32 = 38;
/// Every `CLONE_NEW*` flag that fits in `clone`'s first argument beside the
/// exit signal: `NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Processes, threads, credentials, scheduling, signals and time.
#[rustfmt::skip]
const PROCESS: &[&str] = &[
    "alarm", "arch_prctl", "capget", "capset", "chdir", "clock_getres", "clock_gettime", "clock_nanosleep", "execve",
    "execveat", "exit", "exit_group", "fchdir", "fork", "get_robust_list", "get_thread_area", "getcpu", "getegid",
    "geteuid", "getgid", "getgroups", "getitimer", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "gettid", "gettimeofday", "getuid",
    "ioprio_get", "ioprio_set", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "nanosleep", "pause", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "restart_syscall", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "set_robust_list",
    "set_thread_area", "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer", "setpgid",
    "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "setsid", "setuid", "sigaltstack",
    "sysinfo", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
    "times", "tkill", "umask", "uname", "vfork", "wait4", "waitid",
];

/// Memory: mappings, protection, locking, NUMA policy of the caller.
#[rustfmt::skip]
const MEMORY: &[&str] = &[
    "brk", "get_mempolicy", "madvise", "map_shadow_stack", "mbind", "membarrier", "memfd_create", "mincore", "mlock",
    "mlock2", "mlockall", "mmap", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "remap_file_pages", "set_mempolicy",
];

/// Files and descriptors: I/O, metadata, directories, pipes, xattrs,
/// inotify, asynchronous I/O (not io_uring).
#[rustfmt::skip]
const FILES: &[&str] = &[
    "access", "cachestat", "chmod", "chown", "close", "close_range", "copy_file_range", "creat", "dup", "dup2",
    "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate", "fchmod", "fchmodat", "fchmodat2", "fchown",
    "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat",
    "fstatfs", "fsync", "ftruncate", "futimesat", "getcwd", "getdents", "getdents64", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
    "io_setup", "io_submit", "ioctl", "lchown", "lgetxattr", "link", "linkat", "listxattr", "llistxattr",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open",
    "openat", "openat2", "pipe", "pipe2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "removexattr", "rename", "renameat", "renameat2", "rmdir",
    "sendfile", "setxattr", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "tee", "truncate", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vmsplice", "write", "writev",
];

/// Waiting: poll/select/epoll, futexes, event, signal and timer descriptors.
#[rustfmt::skip]
const EVENTS: &[&str] = &[
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2",
    "futex", "futex_waitv", "poll", "ppoll", "pselect6", "select", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_gettime", "timerfd_settime",
];

/// Sockets (raw ones still need `CAP_NET_RAW`, which no task holds) and
/// System V / POSIX IPC within the task's own IPC namespace.
#[rustfmt::skip]
const NETWORK_AND_IPC: &[&str] = &[
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "recvfrom", "recvmmsg", "recvmsg", "semctl", "semget", "semop", "semtimedop", "sendmmsg", "sendmsg", "sendto",
    "setsockopt", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "socket", "socketpair",
];

/// `personality(2)` values a task may pass: query (`0xffffffff`),
/// `PER_LINUX`, `PER_LINUX | UNAME26`.
const PERSONALITIES: [u64; 3] = [0xffff_ffff, 0x0, 0x0008];

/// Every system call allowed without condition.
pub(crate) fn allowed() -> impl Iterator<Item = &'static str> {
    [PROCESS, MEMORY, FILES, EVENTS, NETWORK_AND_IPC].into_iter().flatten().copied()
}

/// The seccomp architecture of the host: its native ABI only (see the
/// module docs).
fn architectures() -> Vec<&'static str> {
    if cfg!(target_arch = "x86_64") {
        vec!["SCMP_ARCH_X86_64"]
    } else if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64"]
    } else {
        vec!["SCMP_ARCH_NATIVE"]
    }
}

/// The OCI `linux.seccomp` object of every task.
pub(crate) fn profile() -> Value {
    let mut rules = vec![
        json!({"names": allowed().collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW"}),
        // `(flags & CLONE_NAMESPACE_FLAGS) == 0`. libcontainer reads SCMP_CMP_MASKED_EQ's
        // `valueTwo` as the mask and `value` as what the masked argument must equal (runc
        // reads them the other way round); tests/seccomp.rs checks in a real container
        // that clone(CLONE_NEWUSER) is refused while threads and forks work.
        json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0, "valueTwo": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
        }),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
    ];
    for value in PERSONALITIES {
        rules.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": architectures(),
        "syscalls": rules,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn allowed_names(profile: &Value) -> HashSet<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn everything_not_listed_fails_with_eperm() {
        let p = profile();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], 1);
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
        assert_eq!(seccomp.default_action(), oci_spec::runtime::LinuxSeccompAction::ScmpActErrno);
        assert_eq!(seccomp.architectures().as_ref().unwrap().len(), 1, "the native ABI only");
    }

    #[test]
    fn what_ordinary_programs_need_is_allowed() {
        let names = allowed_names(&profile());
        for needed in [
            "read",
            "write",
            "openat",
            "close",
            "mmap",
            "mprotect",
            "brk",
            "execve",
            "exit_group",
            "futex",
            "wait4",
            "rt_sigaction",
            "socket",
            "connect",
            "bind",
            "accept4",
            "epoll_wait",
            "epoll_pwait",
            "getdents64",
            "newfstatat",
            "statx",
            "set_robust_list",
            "rseq",
            "pipe2",
            "dup3",
            "getrandom",
            "fstat",
            "stat",
            "open",
            "fork",
        ] {
            assert!(names.contains(needed), "{needed} must be allowed");
        }
    }

    #[test]
    fn dangerous_calls_are_not_allowed() {
        let p = profile();
        let every_named: HashSet<String> = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| r["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
            .collect();
        for denied in [
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "ptrace",
            "reboot",
            "setns",
            "unshare",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "swapon",
            "settimeofday",
            "clock_settime",
            "open_by_handle_at",
            "userfaultfd",
            "process_vm_readv",
            "io_uring_setup",
            "fsopen",
            "move_mount",
            "sethostname",
            "syslog",
            "iopl",
        ] {
            assert!(!every_named.contains(denied), "{denied} must not be allowed");
        }
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags_and_clone3_falls_back() {
        let p = profile();
        let rules = p["syscalls"].as_array().unwrap();
        let clone = rules.iter().find(|r| r["names"] == json!(["clone"])).unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], 0, "no masked bit may be set");
        let mask = clone["args"][0]["valueTwo"].as_u64().unwrap();
        for flag in [0x0002_0000u64, 0x1000_0000, 0x2000_0000, 0x4000_0000, 0x0800_0000, 0x0400_0000, 0x0200_0000] {
            assert_ne!(mask & flag, 0, "CLONE_NEW flag {flag:#x} is checked");
        }
        // CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD, as pthread_create passes.
        assert_eq!(mask & 0x0001_0f00, 0, "threads can be created");
        let clone3 = rules.iter().find(|r| r["names"] == json!(["clone3"])).unwrap();
        assert_eq!((clone3["action"].as_str(), clone3["errnoRet"].as_u64()), (Some("SCMP_ACT_ERRNO"), Some(38)));
    }

    #[test]
    fn no_name_is_listed_twice() {
        let mut seen = HashSet::new();
        for name in allowed() {
            assert!(seen.insert(name), "{name} is listed twice");
        }
    }
}
