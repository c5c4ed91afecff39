//! Properties of resource arithmetic: the algebra the allocator relies on,
//! and port ranges checked against a plain set of port numbers.

use std::collections::BTreeSet;

use meseta_schemas::resources::{normalize_ports, ports_contain, round_scalar, subtract_ports};
use meseta_schemas::{PortRange, Resources};
use proptest::prelude::*;

/// A scalar on the 1/1000 grid, up to 10^7.
fn scalar() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), (0u64..=10_000_000).prop_map(|k| k as f64 / 1000.0), (0u64..=64).prop_map(|k| k as f64)]
}

/// A range, sometimes empty (`end < begin`), near both ends of the port space.
fn range() -> impl Strategy<Value = PortRange> {
    let begin = prop_oneof![1u16..=300, 65_200u16..=65_535];
    (begin, -3i32..60).prop_map(|(begin, len)| {
        let end = (i32::from(begin) + len).clamp(0, 65_535) as u16;
        PortRange { begin, end }
    })
}

fn ranges() -> impl Strategy<Value = Vec<PortRange>> {
    prop::collection::vec(range(), 0..6)
}

fn resources_with(ports: impl Strategy<Value = Vec<PortRange>>) -> impl Strategy<Value = Resources> {
    (scalar(), scalar(), scalar(), (0u32..8).prop_map(f64::from), ports)
        .prop_map(|(cpus, mem, disk, gpus, ports)| Resources { cpus, mem, disk, gpus, ports })
}

fn resources() -> impl Strategy<Value = Resources> {
    resources_with(ranges())
}

/// Three bundles whose port sets are pairwise disjoint: the normalized
/// ranges of one random set dealt out to x, y and z.
fn disjoint_triple() -> impl Strategy<Value = (Resources, Resources, Resources)> {
    (resources_with(Just(vec![])), resources_with(Just(vec![])), resources_with(Just(vec![])), ranges())
        .prop_flat_map(|(x, y, z, rs)| {
            let rs = normalize_ports(rs);
            let n = rs.len();
            (Just((x, y, z, rs)), prop::collection::vec(0u8..3, n))
        })
        .prop_map(|((mut x, mut y, mut z, rs), owners)| {
            for (r, o) in rs.into_iter().zip(owners) {
                [&mut x, &mut y, &mut z][usize::from(o)].ports.push(r);
            }
            (x, y, z)
        })
}

fn set_of(ranges: &[PortRange]) -> BTreeSet<u16> {
    ranges.iter().filter(|r| r.begin <= r.end).flat_map(|r| r.begin..=r.end).collect()
}

fn normalized(mut r: Resources) -> Resources {
    r.ports = normalize_ports(r.ports);
    r
}

proptest! {
    #[test]
    fn add_is_commutative(a in resources(), b in resources()) {
        prop_assert_eq!(a.add(&b), b.add(&a));
    }

    #[test]
    fn add_is_associative(a in resources(), b in resources(), c in resources()) {
        prop_assert_eq!(a.add(&b).add(&c), a.add(&b.add(&c)));
    }

    #[test]
    fn adding_then_subtracting_gives_back_the_start((a, b, _) in disjoint_triple()) {
        prop_assert_eq!(a.add(&b).saturating_sub(&b), normalized(a));
    }

    #[test]
    fn subtracting_clamps_at_zero(a in resources(), b in resources()) {
        let d = a.saturating_sub(&b);
        for (v, (x, y)) in d.scalar_values().iter().zip(a.scalar_values().iter().zip(b.scalar_values())) {
            prop_assert!(*v >= 0.0);
            prop_assert_eq!(*v, round_scalar((x - y).max(0.0)));
        }
        prop_assert!(d.fits(&a));
    }

    #[test]
    fn a_bundle_fits_in_itself_plus_more(a in resources(), b in resources()) {
        prop_assert!(a.fits(&a.add(&b)));
        prop_assert!(a.fits(&a));
    }

    #[test]
    fn two_that_fit_one_after_the_other_fit_together((x, y, z) in disjoint_triple()) {
        let a = x.add(&y).add(&z);
        prop_assert!(x.fits(&a));
        prop_assert!(y.fits(&a.saturating_sub(&x)));
        prop_assert!(x.add(&y).fits(&a));
    }

    #[test]
    fn fits_then_fits_after_is_fits_together((x, y, _) in disjoint_triple(), a in resources()) {
        if x.fits(&a) && y.fits(&a.saturating_sub(&x)) {
            prop_assert!(x.add(&y).fits(&a));
        }
    }

    #[test]
    fn dominant_share_is_a_fraction_when_it_fits(a in resources(), b in resources()) {
        let total = a.add(&b);
        let share = a.dominant_share(&total);
        prop_assert!((0.0..=1.0).contains(&share), "share {}", share);
    }

    #[test]
    fn dominant_share_grows_with_add(a in resources(), b in resources(), t in resources()) {
        prop_assert!(a.dominant_share(&t) <= a.add(&b).dominant_share(&t));
    }

    #[test]
    fn normalize_is_idempotent_sorted_and_separated(rs in ranges()) {
        let n = normalize_ports(rs.clone());
        prop_assert_eq!(normalize_ports(n.clone()), n.clone());
        for r in &n {
            prop_assert!(!r.is_empty());
        }
        for w in n.windows(2) {
            prop_assert!(u32::from(w[0].end) + 1 < u32::from(w[1].begin), "{:?} then {:?}", w[0], w[1]);
        }
        prop_assert_eq!(set_of(&n), set_of(&rs));
        let count: u32 = n.iter().map(PortRange::len).sum();
        prop_assert_eq!(count as usize, set_of(&rs).len());
    }

    #[test]
    fn subtract_matches_set_difference(set in ranges(), remove in ranges()) {
        let got = subtract_ports(&set, &remove);
        let want: BTreeSet<u16> = set_of(&set).difference(&set_of(&remove)).copied().collect();
        prop_assert_eq!(set_of(&got), want);
        prop_assert_eq!(normalize_ports(got.clone()), got);
    }

    #[test]
    fn contain_matches_subset(set in ranges(), r in range()) {
        let want = set_of(&[r]).is_subset(&set_of(&set));
        prop_assert_eq!(ports_contain(&set, &r), want);
    }

    #[test]
    fn fits_on_ports_matches_subset(a in ranges(), b in ranges()) {
        let x = Resources { ports: a.clone(), ..Default::default() };
        let y = Resources { ports: b.clone(), ..Default::default() };
        prop_assert_eq!(x.fits(&y), set_of(&a).is_subset(&set_of(&b)));
    }
}

#[test]
fn no_drift_after_many_small_steps() {
    let tenth = Resources::scalars(0.1, 0.1, 0.1, 0.0);
    let mut acc = Resources::default();
    for _ in 0..1000 {
        acc = acc.add(&tenth);
    }
    assert_eq!(acc, Resources::scalars(100.0, 100.0, 100.0, 0.0));
    for _ in 0..1000 {
        acc = acc.saturating_sub(&tenth);
    }
    assert_eq!(acc.scalar_values(), [0.0; 4]);
    assert!(acc.is_empty());
}

#[test]
fn thirds_stay_on_the_grid() {
    let third = Resources::scalars(1.0 / 3.0, 0.0, 0.0, 0.0);
    let mut acc = Resources::default();
    for _ in 0..3000 {
        acc = acc.add(&third);
    }
    // 1/3 is kept as 0.333, so 3000 of them are exactly 999.
    assert_eq!(acc.cpus, 999.0);
}

#[test]
fn ports_at_the_edges_of_the_port_space() {
    let all = vec![PortRange { begin: 1, end: 65_535 }];
    assert_eq!(
        subtract_ports(&all, &[PortRange { begin: 65_535, end: 65_535 }]),
        vec![PortRange { begin: 1, end: 65_534 }]
    );
    assert_eq!(subtract_ports(&all, &[PortRange { begin: 1, end: 1 }]), vec![PortRange { begin: 2, end: 65_535 }]);
    assert_eq!(
        normalize_ports(vec![PortRange { begin: 10, end: 20 }, PortRange { begin: 21, end: 30 }]),
        vec![PortRange { begin: 10, end: 30 }],
        "adjacent ranges merge"
    );
    assert!(ports_contain(
        &[PortRange { begin: 10, end: 20 }, PortRange { begin: 21, end: 30 }],
        &PortRange { begin: 15, end: 25 }
    ));
}
