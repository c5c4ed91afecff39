//! Resource quantities and their arithmetic: `cpus`, `mem`, `disk`, `gpus`
//! and port ranges.
//!
//! Owns add / subtract / fits / dominant share. Scalars are kept on a
//! fixed-point grid of 1/1000 (like Mesos) so repeated arithmetic never
//! drifts. It must not know who owns resources: reservation roles and the
//! revocable flag are carried by the containers of `Resources` (an offer's
//! `reserved` and `revocable` fields, an agent's reservations).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scalar resource names, in a fixed order.
pub const SCALARS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// An inclusive range of port numbers, `begin..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct PortRange {
    /// First port of the range.
    pub begin: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Number of ports in the range (0 if `end < begin`).
    pub fn len(&self) -> u32 {
        if self.end < self.begin {
            0
        } else {
            u32::from(self.end) - u32::from(self.begin) + 1
        }
    }
    /// Whether the range holds no port.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bundle of resources. `mem` and `disk` are MiB; `cpus` may be fractional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    /// CPU cores (fractional).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cpus: f64,
    /// Memory in MiB.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem: f64,
    /// Disk in MiB.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk: f64,
    /// Whole GPUs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: f64,
    /// Port ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Round a scalar onto the 1/1000 grid.
pub fn round_scalar(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Resources {
    /// Only scalars, no ports.
    pub fn scalars(cpus: f64, mem: f64, disk: f64, gpus: f64) -> Self {
        Resources { cpus, mem, disk, gpus, ports: Vec::new() }
    }

    /// The scalar values in `SCALARS` order.
    pub fn scalar_values(&self) -> [f64; 4] {
        [self.cpus, self.mem, self.disk, self.gpus]
    }

    fn map_scalars(&self, other: &Resources, f: impl Fn(f64, f64) -> f64) -> [f64; 4] {
        let a = self.scalar_values();
        let b = other.scalar_values();
        [0, 1, 2, 3].map(|i| round_scalar(f(a[i], b[i])))
    }

    /// True when every scalar is zero and there are no ports.
    pub fn is_empty(&self) -> bool {
        self.scalar_values().iter().all(|v| *v <= 0.0) && self.ports.iter().all(|r| r.is_empty())
    }

    /// Sum of two bundles; port ranges are merged.
    pub fn add(&self, other: &Resources) -> Resources {
        let [cpus, mem, disk, gpus] = self.map_scalars(other, |a, b| a + b);
        let mut ports = self.ports.clone();
        ports.extend(other.ports.iter().copied());
        Resources { cpus, mem, disk, gpus, ports: normalize_ports(ports) }
    }

    /// `self - other`, scalars clamped at zero, ports removed.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        let [cpus, mem, disk, gpus] = self.map_scalars(other, |a, b| (a - b).max(0.0));
        Resources { cpus, mem, disk, gpus, ports: subtract_ports(&self.ports, &other.ports) }
    }

    /// Whether `self` fits inside `available` (every scalar and every port).
    pub fn fits(&self, available: &Resources) -> bool {
        let a = self.scalar_values();
        let b = available.scalar_values();
        (0..4).all(|i| round_scalar(a[i]) <= round_scalar(b[i]) + 1e-9)
            && self.ports.iter().all(|r| ports_contain(&available.ports, r))
    }

    /// Dominant share of `self` against `total`: the maximum over scalars of
    /// `self / total` (scalars whose total is zero are ignored).
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        let a = self.scalar_values();
        let t = total.scalar_values();
        (0..4).filter(|&i| t[i] > 0.0).map(|i| a[i] / t[i]).fold(0.0, f64::max)
    }

    /// Number of ports across all ranges.
    pub fn port_count(&self) -> u32 {
        self.ports.iter().map(PortRange::len).sum()
    }
}

/// Sort and merge overlapping or adjacent ranges; drop empty ones.
pub fn normalize_ports(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.retain(|r| !r.is_empty());
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.begin) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// Whether the (normalized or not) set `set` contains every port of `r`.
pub fn ports_contain(set: &[PortRange], r: &PortRange) -> bool {
    if r.is_empty() {
        return true;
    }
    normalize_ports(set.to_vec()).iter().any(|s| s.begin <= r.begin && r.end <= s.end)
}

/// `set - remove`, normalized.
pub fn subtract_ports(set: &[PortRange], remove: &[PortRange]) -> Vec<PortRange> {
    let mut cur = normalize_ports(set.to_vec());
    for rm in normalize_ports(remove.to_vec()) {
        let mut next = Vec::with_capacity(cur.len() + 1);
        for s in cur {
            if rm.end < s.begin || rm.begin > s.end {
                next.push(s);
                continue;
            }
            if rm.begin > s.begin {
                next.push(PortRange { begin: s.begin, end: rm.begin - 1 });
            }
            if rm.end < s.end {
                next.push(PortRange { begin: rm.end + 1, end: s.end });
            }
        }
        cur = next;
    }
    cur
}
