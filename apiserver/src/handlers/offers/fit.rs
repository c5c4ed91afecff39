//! What an accept draws from an offer: the pure resource bookkeeping of
//! `Launch`, `Reserve` and `Unreserve` operations against the offer's three
//! pools (unreserved, reserved for the role, revocable).
//!
//! Owns the drawing rules and the "does not fit" messages. It must not read
//! or write the store.
//!
//! # Rules
//!
//! - A task with `spec.revocable` draws its scalars (cpus, mem, disk, gpus)
//!   only from the revocable pool. Any other task draws each scalar from the
//!   reserved pool first, then the unreserved one.
//! - Ports are not oversubscribed: every task takes its ports from the
//!   reserved pool first, then the unreserved, then the revocable one.
//!   Fixed ports (`spec.ports[i].port > 0`) and explicit
//!   `spec.resources.ports` ranges must lie in the offer; `port: 0` gets the
//!   lowest port still free, after the fixed ones are taken.
//! - `Reserve` moves unreserved resources into the reserved pool (a later
//!   `Launch` of the same accept may use them); `Unreserve` the other way.
//! - A failed draw changes nothing and names every resource that is short,
//!   with what was asked and what is left.

use meseta_schemas::kinds::{OfferSpec, TaskSpec};
use meseta_schemas::resources::{normalize_ports, ports_contain, round_scalar, subtract_ports, PortRange, SCALARS};
use meseta_schemas::{FieldError, Resources};

/// Tolerance of scalar comparisons (the resource grid is 1/1000).
const EPS: f64 = 1e-9;

/// What is still left of an offer while an accept's operations run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pools {
    /// Unreserved resources.
    pub(crate) unreserved: Resources,
    /// Resources reserved for the offer's role.
    pub(crate) reserved: Resources,
    /// Revocable resources.
    pub(crate) revocable: Resources,
}

/// What one task drew: its assigned ports (in `spec.ports` order) and every
/// port it holds (explicit ranges plus assigned ports).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Drawn {
    /// `status.ports`.
    pub(crate) assigned: Vec<u16>,
    /// `spec.resources.ports` once bound.
    pub(crate) ports: Vec<PortRange>,
}

fn scalar(r: &Resources, i: usize) -> f64 {
    r.scalar_values()[i]
}

fn set_scalar(r: &mut Resources, i: usize, v: f64) {
    let v = round_scalar(v.max(0.0));
    match i {
        0 => r.cpus = v,
        1 => r.mem = v,
        2 => r.disk = v,
        _ => r.gpus = v,
    }
}

fn single(p: u16) -> PortRange {
    PortRange { begin: p, end: p }
}

fn show_ports(ports: &[PortRange]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = ports
        .iter()
        .map(|r| if r.begin == r.end { r.begin.to_string() } else { format!("{}-{}", r.begin, r.end) })
        .collect();
    parts.join(",")
}

impl Pools {
    /// The pools of a fresh offer.
    pub(crate) fn from_offer(spec: &OfferSpec) -> Pools {
        Pools { unreserved: spec.resources.clone(), reserved: spec.reserved.clone(), revocable: spec.revocable.clone() }
    }

    /// Everything still left, all pools together.
    pub(crate) fn remaining(&self) -> Resources {
        self.unreserved.add(&self.reserved).add(&self.revocable)
    }

    fn free_ports(&self) -> Vec<PortRange> {
        let mut all = self.reserved.ports.clone();
        all.extend(self.unreserved.ports.iter().copied());
        all.extend(self.revocable.ports.iter().copied());
        normalize_ports(all)
    }

    /// Draws `spec`'s resources; `field` is the task's path in the request
    /// (`operations[0].tasks[1]`). On error nothing is drawn.
    pub(crate) fn launch(&mut self, field: &str, spec: &TaskSpec) -> Result<Drawn, Vec<FieldError>> {
        let mut next = self.clone();
        let mut errs = Vec::new();
        for (i, name) in SCALARS.iter().enumerate() {
            let need = round_scalar(scalar(&spec.resources, i));
            if need <= 0.0 {
                continue;
            }
            let path = format!("{field}.spec.resources.{name}");
            if spec.revocable {
                let have = scalar(&next.revocable, i);
                if need > have + EPS {
                    let detail = format!("a revocable task draws only revocable resources; the offer has {have} left");
                    errs.push(FieldError::invalid(path, need, detail));
                    continue;
                }
                set_scalar(&mut next.revocable, i, have - need);
                continue;
            }
            let (res, unres) = (scalar(&next.reserved, i), scalar(&next.unreserved, i));
            if need > res + unres + EPS {
                let detail =
                    format!("the offer has {} left ({res} reserved + {unres} unreserved)", round_scalar(res + unres));
                errs.push(FieldError::invalid(path, need, detail));
                continue;
            }
            let from_reserved = need.min(res);
            set_scalar(&mut next.reserved, i, res - from_reserved);
            set_scalar(&mut next.unreserved, i, unres - (need - from_reserved));
        }
        let mut taken: Vec<PortRange> = Vec::new();
        for (k, range) in spec.resources.ports.iter().enumerate() {
            let free = subtract_ports(&next.free_ports(), &taken);
            if ports_contain(&free, range) {
                taken.push(*range);
            } else {
                errs.push(FieldError::invalid(
                    format!("{field}.spec.resources.ports[{k}]"),
                    show_ports(&[*range]),
                    format!("not among the offer's free ports ({})", show_ports(&free)),
                ));
            }
        }
        let mut assigned = vec![0u16; spec.ports.len()];
        for (k, req) in spec.ports.iter().enumerate().filter(|(_, r)| r.port != 0) {
            let free = subtract_ports(&next.free_ports(), &taken);
            if ports_contain(&free, &single(req.port)) {
                taken.push(single(req.port));
                assigned[k] = req.port;
            } else {
                errs.push(FieldError::invalid(
                    format!("{field}.spec.ports[{k}].port"),
                    req.port,
                    format!("not among the offer's free ports ({})", show_ports(&free)),
                ));
            }
        }
        for (k, _) in spec.ports.iter().enumerate().filter(|(_, r)| r.port == 0) {
            let free = subtract_ports(&next.free_ports(), &taken);
            match free.iter().find(|r| !r.is_empty()) {
                Some(r) => {
                    taken.push(single(r.begin));
                    assigned[k] = r.begin;
                }
                None => errs.push(FieldError::invalid(
                    format!("{field}.spec.ports[{k}].port"),
                    0,
                    "the offer has no free port left",
                )),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let taken = normalize_ports(taken);
        for pool in [&mut next.reserved, &mut next.unreserved, &mut next.revocable] {
            pool.ports = subtract_ports(&pool.ports, &taken);
        }
        *self = next;
        Ok(Drawn { assigned, ports: taken })
    }

    /// `Reserve`: unreserved → reserved. `field` names the operation.
    pub(crate) fn reserve(&mut self, field: &str, res: &Resources) -> Result<(), Vec<FieldError>> {
        let errs = short_of(field, res, &self.unreserved, "unreserved");
        if !errs.is_empty() {
            return Err(errs);
        }
        self.unreserved = self.unreserved.saturating_sub(res);
        self.reserved = self.reserved.add(res);
        Ok(())
    }

    /// `Unreserve`: reserved → unreserved. `field` names the operation.
    pub(crate) fn unreserve(&mut self, field: &str, res: &Resources) -> Result<(), Vec<FieldError>> {
        let errs = short_of(field, res, &self.reserved, "reserved");
        if !errs.is_empty() {
            return Err(errs);
        }
        self.reserved = self.reserved.saturating_sub(res);
        self.unreserved = self.unreserved.add(res);
        Ok(())
    }
}

/// One error per resource of `want` that `have` lacks.
fn short_of(field: &str, want: &Resources, have: &Resources, pool: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, name) in SCALARS.iter().enumerate() {
        let (w, h) = (scalar(want, i), scalar(have, i));
        if w > h + EPS {
            errs.push(FieldError::invalid(
                format!("{field}.resources.{name}"),
                w,
                format!("the offer has {h} {pool} left"),
            ));
        }
    }
    for r in &want.ports {
        if !ports_contain(&have.ports, r) {
            errs.push(FieldError::invalid(
                format!("{field}.resources.ports"),
                show_ports(&[*r]),
                format!("not among the offer's {pool} ports ({})", show_ports(&have.ports)),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::PortRequest;

    use super::*;

    fn pools() -> Pools {
        Pools {
            unreserved: Resources {
                ports: vec![PortRange { begin: 31000, end: 31002 }],
                ..Resources::scalars(2.0, 1024.0, 0.0, 0.0)
            },
            reserved: Resources::scalars(1.0, 256.0, 0.0, 0.0),
            revocable: Resources::scalars(0.5, 0.0, 0.0, 0.0),
        }
    }

    fn task(cpus: f64, mem: f64, ports: &[u16]) -> TaskSpec {
        TaskSpec {
            resources: Resources::scalars(cpus, mem, 0.0, 0.0),
            ports: ports.iter().map(|&port| PortRequest { name: String::new(), port }).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn reserved_first_then_unreserved() {
        let mut p = pools();
        p.launch("t", &task(1.5, 512.0, &[])).unwrap();
        assert_eq!(p.reserved.cpus, 0.0);
        assert_eq!(p.unreserved.cpus, 1.5);
        assert_eq!(p.reserved.mem, 0.0);
        assert_eq!(p.unreserved.mem, 768.0);
    }

    #[test]
    fn too_much_names_the_resource_and_changes_nothing() {
        let mut p = pools();
        let errs = p.launch("operations[0].tasks[0]", &task(3.5, 10.0, &[])).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "operations[0].tasks[0].spec.resources.cpus");
        assert!(errs[0].to_string().contains("3.5"), "{}", errs[0]);
        assert!(errs[0].to_string().contains("3 left"), "{}", errs[0]);
        assert_eq!(p, pools());
    }

    #[test]
    fn revocable_tasks_draw_only_revocable() {
        let mut p = pools();
        let mut t = task(0.5, 0.0, &[]);
        t.revocable = true;
        p.launch("t", &t).unwrap();
        assert_eq!(p.revocable.cpus, 0.0);
        assert_eq!(p.unreserved.cpus, 2.0);
        assert!(p.launch("t", &t).is_err());
    }

    #[test]
    fn fixed_ports_first_then_lowest_free() {
        let mut p = pools();
        let d = p.launch("t", &task(0.1, 0.0, &[0, 31000])).unwrap();
        assert_eq!(d.assigned, vec![31001, 31000]);
        assert_eq!(p.unreserved.ports, vec![PortRange { begin: 31002, end: 31002 }]);
        let errs = p.launch("t", &task(0.1, 0.0, &[31000])).unwrap_err();
        assert_eq!(errs[0].field, "t.spec.ports[0].port");
        let errs = p.launch("t", &task(0.1, 0.0, &[0, 0])).unwrap_err();
        assert_eq!(errs[0].field, "t.spec.ports[1].port");
    }

    #[test]
    fn reserve_then_unreserve_moves_between_pools() {
        let mut p = pools();
        p.reserve("operations[0]", &Resources::scalars(1.0, 0.0, 0.0, 0.0)).unwrap();
        assert_eq!((p.unreserved.cpus, p.reserved.cpus), (1.0, 2.0));
        let errs = p.reserve("operations[1]", &Resources::scalars(5.0, 0.0, 0.0, 0.0)).unwrap_err();
        assert_eq!(errs[0].field, "operations[1].resources.cpus");
        p.unreserve("operations[2]", &Resources::scalars(2.0, 0.0, 0.0, 0.0)).unwrap();
        assert_eq!((p.unreserved.cpus, p.reserved.cpus), (3.0, 0.0));
    }
}
