//! The allocator's working state for one cycle, built once from an
//! [`AllocationInput`]: indexed roles, frameworks and agents with their free
//! resources per bucket, the cluster total and the headroom. Owns that
//! translation; it must not decide who gets what (see `engine`).

use std::collections::{BTreeSet, HashMap};

use crate::meta::Time;
use crate::resources::{normalize_ports, subtract_ports, PortRange, Resources};

use super::drf::Key;
use super::filters::FilterIndex;
use super::quota::{self, Headroom};
use super::scalars::{self, milli, Milli, ZERO};
use super::{AllocationInput, FrameworkInput};

/// Free resources of one agent reserved for one role.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) role: u32,
    pub(crate) free: Milli,
    pub(crate) ports: Vec<PortRange>,
}

/// One agent's free resources.
#[derive(Debug)]
pub(crate) struct AgentState {
    pub(crate) free: Milli,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) reserved: Vec<Bucket>,
    pub(crate) revocable: Milli,
    pub(crate) gpu: bool,
    pub(crate) schedulable: bool,
    /// Offers made here in stage 1: (framework, index in the offer list).
    pub(crate) stage1_offers: Vec<(u32, usize)>,
}

impl AgentState {
    /// Everything still free here, all buckets together.
    pub(crate) fn free_total(&self) -> Milli {
        let mut m = scalars::add(&self.free, &self.revocable);
        for b in &self.reserved {
            m = scalars::add(&m, &b.free);
        }
        m
    }
}

/// One role.
#[derive(Debug)]
pub(crate) struct RoleState<'a> {
    pub(crate) name: &'a str,
    pub(crate) weight: f64,
    pub(crate) allocated: Milli,
    pub(crate) guarantee: Milli,
    pub(crate) limit: Option<Milli>,
    pub(crate) unmet: Milli,
    pub(crate) offers: u64,
    /// Frameworks that are not suppressed.
    pub(crate) active: u32,
    /// Active frameworks that accept revocable resources.
    pub(crate) revocable_fws: u32,
}

/// One framework.
#[derive(Debug)]
pub(crate) struct FwState<'a> {
    pub(crate) input: &'a FrameworkInput,
    pub(crate) role: u32,
    pub(crate) allocated: Milli,
    pub(crate) offers: u64,
    pub(crate) key: Key,
}

/// The whole cycle's state.
#[derive(Debug)]
pub(crate) struct State<'a> {
    pub(crate) input: &'a AllocationInput,
    pub(crate) total: Milli,
    pub(crate) mins: Vec<Milli>,
    pub(crate) roles: Vec<RoleState<'a>>,
    pub(crate) fws: Vec<FwState<'a>>,
    pub(crate) agents: Vec<AgentState>,
    pub(crate) filters: FilterIndex,
    pub(crate) headroom: Headroom,
}

fn role_names(input: &AllocationInput) -> Vec<&str> {
    let mut names: BTreeSet<&str> = input.roles.keys().map(String::as_str).collect();
    names.extend(input.frameworks.iter().map(|f| f.role.as_str()));
    for a in &input.agents {
        names.extend(a.static_reservations.keys().map(String::as_str));
        names.extend(a.dynamic_reservations.keys().map(String::as_str));
        names.extend(a.used.reserved.keys().map(String::as_str));
    }
    names.into_iter().collect()
}

fn is_normalized(ports: &[PortRange]) -> bool {
    ports.iter().all(|r| !r.is_empty()) && ports.windows(2).all(|w| u32::from(w[0].end) + 1 < u32::from(w[1].begin))
}

/// `set - remove` in one pass with one allocation when both are already
/// normalized (the common case); otherwise the general `subtract_ports`.
pub(crate) fn subtract_sorted(set: &[PortRange], remove: &[PortRange]) -> Vec<PortRange> {
    if !is_normalized(set) || !is_normalized(remove) {
        return subtract_ports(set, remove);
    }
    let mut out = Vec::with_capacity(set.len() + remove.len());
    let mut j = 0;
    for s in set {
        let (mut begin, end) = (u32::from(s.begin), u32::from(s.end));
        while j < remove.len() && u32::from(remove[j].end) < begin {
            j += 1;
        }
        for r in &remove[j..] {
            let (rb, re) = (u32::from(r.begin), u32::from(r.end));
            if rb > end || begin > end {
                break;
            }
            if rb > begin {
                out.push(PortRange { begin: begin as u16, end: (rb - 1) as u16 });
            }
            begin = begin.max(re + 1);
        }
        if begin <= end {
            out.push(PortRange { begin: begin as u16, end: end as u16 });
        }
    }
    out
}

fn build_agent(a: &super::AgentInput, role_index: &HashMap<&str, u32>) -> AgentState {
    let mut reserved: Vec<Bucket> = Vec::new();
    let mut reserved_sum = ZERO;
    let mut reserved_ports: Vec<PortRange> = Vec::new();
    let roles: BTreeSet<&String> = a.static_reservations.keys().chain(a.dynamic_reservations.keys()).collect();
    for role in roles {
        let empty = Resources::default();
        let st = a.static_reservations.get(role).unwrap_or(&empty);
        let dy = a.dynamic_reservations.get(role).unwrap_or(&empty);
        let size = scalars::add(&milli(st), &milli(dy));
        let ports = normalize_ports(st.ports.iter().chain(&dy.ports).copied().collect());
        let used = a.used.reserved.get(role).unwrap_or(&empty);
        reserved_sum = scalars::add(&reserved_sum, &size);
        reserved_ports.extend(ports.iter().copied());
        reserved.push(Bucket {
            role: role_index[role.as_str()],
            free: scalars::sub(&size, &milli(used)),
            ports: subtract_sorted(&ports, &used.ports),
        });
    }
    let unreserved = scalars::sub(&milli(&a.total), &reserved_sum);
    let ports = if reserved_ports.is_empty() {
        subtract_sorted(&a.total.ports, &a.used.unreserved.ports)
    } else {
        subtract_sorted(&subtract_ports(&a.total.ports, &reserved_ports), &a.used.unreserved.ports)
    };
    AgentState {
        free: scalars::sub(&unreserved, &milli(&a.used.unreserved)),
        ports,
        reserved,
        revocable: scalars::sub(&milli(&a.revocable), &milli(&a.used.revocable)),
        gpu: a.total.gpus > 0.0,
        schedulable: !a.unschedulable,
        stage1_offers: Vec::new(),
    }
}

impl<'a> State<'a> {
    /// Index `input` for one cycle at `now`.
    pub(crate) fn build(input: &'a AllocationInput, now: Time) -> State<'a> {
        let names = role_names(input);
        let role_index: HashMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect();

        let mut total = ZERO;
        let mut agents = Vec::with_capacity(input.agents.len());
        let mut unallocated_reserved = vec![ZERO; names.len()];
        let mut headroom = Headroom::default();
        for a in &input.agents {
            total = scalars::add(&total, &milli(&a.total));
            let st = build_agent(a, &role_index);
            if st.schedulable {
                headroom.available = scalars::add(&headroom.available, &st.free);
                for b in &st.reserved {
                    let r = b.role as usize;
                    unallocated_reserved[r] = scalars::add(&unallocated_reserved[r], &b.free);
                }
            }
            agents.push(st);
        }

        let default_role = super::RoleInput::default();
        let mut roles: Vec<RoleState<'a>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ri = input.roles.get(*name).unwrap_or(&default_role);
                let allocated = milli(&ri.allocated);
                let guarantee = ri.quota.as_ref().map(|q| milli(&q.guarantee)).unwrap_or(ZERO);
                let consumption = scalars::add(&allocated, &unallocated_reserved[i]);
                let unmet = quota::unmet(&guarantee, &consumption);
                headroom.required = scalars::add(&headroom.required, &unmet);
                RoleState {
                    name,
                    weight: if ri.weight.is_finite() && ri.weight > 0.0 { ri.weight } else { 1.0 },
                    allocated,
                    guarantee,
                    limit: ri.quota.as_ref().and_then(|q| q.limit.as_ref()).map(milli),
                    unmet,
                    offers: 0,
                    active: 0,
                    revocable_fws: 0,
                }
            })
            .collect();

        let mut fw_refs: Vec<&FrameworkInput> = input.frameworks.iter().collect();
        fw_refs.sort_by(|x, y| (&x.role, &x.name).cmp(&(&y.role, &y.name)));
        let fws = fw_refs
            .iter()
            .enumerate()
            .map(|(i, fw)| {
                let role = role_index[fw.role.as_str()];
                if !fw.suppressed {
                    roles[role as usize].active += 1;
                    if fw.revocable {
                        roles[role as usize].revocable_fws += 1;
                    }
                }
                let allocated = milli(&fw.allocated);
                FwState {
                    input: fw,
                    role,
                    allocated,
                    offers: 0,
                    key: Key::new(scalars::share(&allocated, &total), 0, i as u32),
                }
            })
            .collect();
        let filters = FilterIndex::build(&fw_refs, &input.agents, now);
        let mins = input.min_allocatable.iter().map(milli).collect();
        State { input, total, mins, roles, fws, agents, filters, headroom }
    }

    /// Unweighted dominant share of role `r`.
    pub(crate) fn role_share(&self, r: usize) -> f64 {
        scalars::share(&self.roles[r].allocated, &self.total)
    }

    /// Dominant share of framework `f`.
    pub(crate) fn fw_share(&self, f: usize) -> f64 {
        scalars::share(&self.fws[f].allocated, &self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(v: &[(u16, u16)]) -> Vec<PortRange> {
        v.iter().map(|&(begin, end)| PortRange { begin, end }).collect()
    }

    #[test]
    fn one_pass_subtract_matches_the_general_one() {
        type Case<'a> = (&'a [(u16, u16)], &'a [(u16, u16)]);
        let cases: &[Case<'_>] = &[
            (&[(31000, 31999)], &[]),
            (&[(31000, 31999)], &[(31000, 31001)]),
            (&[(10, 20), (30, 40)], &[(5, 12), (15, 15), (18, 33), (40, 50)]),
            (&[(10, 20), (30, 40)], &[(0, 65535)]),
            (&[(0, 65535)], &[(65535, 65535), (0, 0)]),
            (&[(30, 40), (10, 20)], &[(12, 12)]),
            (&[(1, 5)], &[(7, 9)]),
        ];
        for (set, remove) in cases {
            let (set, remove) = (pr(set), pr(remove));
            assert_eq!(subtract_sorted(&set, &remove), subtract_ports(&set, &remove), "{set:?} - {remove:?}");
        }
    }
}
