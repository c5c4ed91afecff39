//! CPU times read from `/proc/<pid>/stat` (and a thread's
//! `/proc/<pid>/task/<tid>/stat`): the one parser of those lines the
//! benches share. Times on this machine's loaded two cores move far less
//! with the neighbours than wall-clock figures do.
//!
//! Owns reading and parsing those lines. It must not start or stop anything.

use anyhow::Context;

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on every Linux ABI).
pub const USER_HZ: f64 = 100.0;

/// The fields of a `stat` line the benches use, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat<'a> {
    /// The command (or thread) name, which may hold spaces and parentheses.
    pub name: &'a str,
    /// User time.
    pub utime: u64,
    /// System time.
    pub stime: u64,
    /// User time of the waited-for children, theirs included.
    pub cutime: u64,
    /// System time of the waited-for children, theirs included.
    pub cstime: u64,
}

/// Parses one `stat` line; `None` when it is not one.
pub fn parse(stat: &str) -> Option<Stat<'_>> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    // Fields after the name start at field 3 (state); utime, stime, cutime and cstime are 14 to 17.
    let mut rest = stat.get(close + 1..)?.split_whitespace().skip(11).map(|f| f.parse::<u64>().ok());
    let mut next = || rest.next().flatten();
    Some(Stat { name: stat.get(open + 1..close)?, utime: next()?, stime: next()?, cutime: next()?, cstime: next()? })
}

/// CPU milliseconds of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcCpu {
    /// Its own, all threads: `utime + stime`.
    pub own_ms: f64,
    /// The children it has waited for, theirs included: `cutime + cstime`.
    /// For the agent: its shims and the containers' processes (each shim
    /// reaps its container, the agent reaps its shims); for a bench: the
    /// peer runs it waited for.
    pub children_ms: f64,
}

impl ProcCpu {
    /// Process `pid`'s figures now (`"self"` for this one).
    pub fn of(pid: &str) -> anyhow::Result<ProcCpu> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let s = parse(&stat).with_context(|| format!("{path}: no CPU times in {stat:?}"))?;
        let ms = |t: u64| t as f64 / USER_HZ * 1000.0;
        Ok(ProcCpu { own_ms: ms(s.utime + s.stime), children_ms: ms(s.cutime + s.cstime) })
    }

    /// Own and children's together.
    pub fn total_ms(&self) -> f64 {
        self.own_ms + self.children_ms
    }
}

/// System CPU milliseconds of process `pid` (`"self"` for this one), its
/// own threads only: the kernel's share of its work (system calls, and the
/// zeroing of every page it touches first).
pub fn system_ms(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let s = parse(&stat).with_context(|| format!("{path}: no CPU times in {stat:?}"))?;
    Ok(s.stime as f64 / USER_HZ * 1000.0)
}

/// The peak resident set (`VmHWM`, in KiB) of a `/proc/<pid>/status` text.
pub fn peak_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_cpu_ticks() {
        let line = "42 (rt-apiserver-3) S 1 42 42 0 -1 4194368 10 0 0 0 150 25 3 4 20 0 1 0 100 0 0";
        let s = parse(line).unwrap();
        assert_eq!((s.name, s.utime + s.stime, s.cutime + s.cstime), ("rt-apiserver-3", 175, 7));
    }

    #[test]
    fn names_with_parentheses_and_spaces_parse() {
        let line = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0";
        let s = parse(line).unwrap();
        assert_eq!((s.name, s.utime + s.stime), ("a (b) c", 7));
        assert_eq!(parse("7 (x) R 1 2"), None, "too few fields");
    }

    #[test]
    fn peak_rss_is_read_from_a_status_text() {
        let status = "Name:\tschedule\nVmPeak:\t 9000 kB\nVmHWM:\t  2823644 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(peak_rss_kib(status), Some(2_823_644));
        assert_eq!(peak_rss_kib("Name:\tx\nVmRSS:\t1 kB\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(peak_rss_kib(&own).is_some_and(|k| k > 0));
    }

    #[test]
    fn cpu_of_this_process_is_read_and_grows() {
        let before = ProcCpu::of("self").unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        // Read first: the system time is part of what is read after it.
        let system = system_ms("self").unwrap();
        let after = ProcCpu::of("self").unwrap();
        assert!(after.own_ms > before.own_ms, "{before:?} -> {after:?}");
        assert!(after.total_ms() >= after.own_ms);
        assert!(system <= after.own_ms, "{system} ms of system time, {after:?}");
        assert!(ProcCpu::of("999999999").is_err());
        assert!(system_ms("999999999").is_err());
    }
}
