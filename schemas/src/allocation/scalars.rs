//! Exact scalar arithmetic for the allocator: each scalar of [`Resources`]
//! as an integer count of thousandths (the grid `Resources` rounds to), in
//! `SCALARS` order. Owns conversions and element-wise operations only; it
//! must not know about roles or agents.

use crate::resources::{PortRange, Resources};

/// cpus, mem, disk, gpus in thousandths.
pub(crate) type Milli = [i64; 4];

/// No resources.
pub(crate) const ZERO: Milli = [0; 4];

/// No bound.
pub(crate) const UNBOUNDED: Milli = [i64::MAX; 4];

/// The scalars of `r` in thousandths (negative values read as 0).
pub(crate) fn milli(r: &Resources) -> Milli {
    r.scalar_values().map(|v| (v * 1000.0).round().max(0.0) as i64)
}

/// A `Resources` with these scalars and ports.
pub(crate) fn to_resources(m: &Milli, ports: Vec<PortRange>) -> Resources {
    let [cpus, mem, disk, gpus] = m.map(|v| v as f64 / 1000.0);
    Resources { cpus, mem, disk, gpus, ports }
}

/// `a + b`.
pub(crate) fn add(a: &Milli, b: &Milli) -> Milli {
    [0, 1, 2, 3].map(|i| a[i].saturating_add(b[i]))
}

/// `a - b`, each scalar clamped at 0.
pub(crate) fn sub(a: &Milli, b: &Milli) -> Milli {
    [0, 1, 2, 3].map(|i| a[i].saturating_sub(b[i]).max(0))
}

/// Element-wise minimum.
pub(crate) fn min(a: &Milli, b: &Milli) -> Milli {
    [0, 1, 2, 3].map(|i| a[i].min(b[i]))
}

/// Whether any scalar is positive.
pub(crate) fn any(a: &Milli) -> bool {
    a.iter().any(|v| *v > 0)
}

/// Whether `a <= b` for every scalar.
pub(crate) fn le(a: &Milli, b: &Milli) -> bool {
    (0..4).all(|i| a[i] <= b[i])
}

/// Dominant share of `alloc` in `total`: max over scalars with a positive total.
pub(crate) fn share(alloc: &Milli, total: &Milli) -> f64 {
    let mut s = 0.0f64;
    for i in 0..4 {
        if total[i] > 0 {
            s = s.max(alloc[i] as f64 / total[i] as f64);
        }
    }
    s
}

/// Whether `m` holds at least one of the `mins` bundles (any non-empty `m` when `mins` is empty).
pub(crate) fn allocatable(m: &Milli, mins: &[Milli]) -> bool {
    any(m) && (mins.is_empty() || mins.iter().any(|min| le(min, m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_on_the_thousandth_grid() {
        let r = Resources::scalars(0.1, 32.0, 1.5, 1.0);
        assert_eq!(milli(&r), [100, 32_000, 1_500, 1_000]);
        assert_eq!(to_resources(&milli(&r), Vec::new()), r);
    }

    #[test]
    fn min_allocatable_is_any_of_the_bundles() {
        let mins = [milli(&Resources::scalars(0.01, 0.0, 0.0, 0.0)), milli(&Resources::scalars(0.0, 32.0, 0.0, 0.0))];
        assert!(allocatable(&[10, 0, 0, 0], &mins));
        assert!(allocatable(&[0, 32_000, 0, 0], &mins));
        assert!(!allocatable(&[9, 31_999, 5_000, 0], &mins));
        assert!(!allocatable(&ZERO, &[]));
        assert!(allocatable(&[0, 0, 1, 0], &[]));
    }

    #[test]
    fn share_ignores_kinds_without_total() {
        assert_eq!(share(&[1_000, 4_000, 7, 0], &[9_000, 18_000, 0, 0]), 4.0 / 18.0);
        assert_eq!(sub(&[1, 2, 3, 4], &[2, 2, 2, 2]), [0, 0, 1, 2]);
    }
}
