//! The allocation loop: stage 1 (guarantees) then stage 2 (weighted DRF),
//! agent by agent in shuffled order. Owns who is picked and what one offer
//! holds; the module docs of [`super`] state the rules it keeps. It must not
//! do I/O or read the clock.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::meta::Time;
use crate::resources::{normalize_ports, PortRange};

use super::drf::{Key, Sorter};
use super::quota::{self, Stage};
use super::scalars::{self, Milli, ZERO};
use super::state::State;
use super::{AllocationInput, AllocationPlan, PlannedOffer};

/// Run one allocation cycle over `input` at `now`; `rng_seed` drives the agent shuffle.
///
/// Pure: the same arguments always give the same plan.
pub fn allocate(input: &AllocationInput, now: Time, rng_seed: u64) -> AllocationPlan<'_> {
    let mut st = State::build(input, now);
    let mut fw_sorters: Vec<Sorter> = (0..st.roles.len()).map(|_| Sorter::default()).collect();
    for fw in &st.fws {
        if !fw.input.suppressed {
            fw_sorters[fw.role as usize].insert(fw.key);
        }
    }
    let mut order: Vec<u32> = (0..st.agents.len() as u32).filter(|&a| st.agents[a as usize].schedulable).collect();
    order.shuffle(&mut StdRng::seed_from_u64(rng_seed));

    let mut offers = Offers { list: Vec::with_capacity(order.len()) };
    run_stage(&mut st, &mut fw_sorters, &mut offers, Stage::Guarantee, &order);
    run_stage(&mut st, &mut fw_sorters, &mut offers, Stage::Fair, &order);
    into_plan(&st, offers)
}

/// One offer being assembled.
#[derive(Debug)]
struct OfferAcc {
    fw: u32,
    agent: u32,
    unreserved: Milli,
    ports: Vec<PortRange>,
    reserved: Milli,
    reserved_ports: Vec<PortRange>,
    revocable: Milli,
    merged: bool,
}

/// Offers made so far; stage-2 additions to a stage-1 offer are merged into
/// it (agents remember their stage-1 offers).
#[derive(Debug, Default)]
struct Offers {
    list: Vec<OfferAcc>,
}

/// What one framework is given on one agent.
struct Grant {
    reserved: Milli,
    bucket: Option<usize>,
    unreserved: Milli,
    revocable: Milli,
}

fn role_key(st: &State<'_>, r: usize, stage: Stage) -> Key {
    let share = match stage {
        Stage::Guarantee => st.role_share(r),
        Stage::Fair => st.role_share(r) / st.roles[r].weight,
    };
    Key::new(share, st.roles[r].offers, r as u32)
}

fn run_stage(st: &mut State<'_>, fw_sorters: &mut [Sorter], offers: &mut Offers, stage: Stage, order: &[u32]) {
    let mut roles = Sorter::default();
    let mut role_keys: Vec<Option<Key>> = vec![None; st.roles.len()];
    for (r, slot) in role_keys.iter_mut().enumerate() {
        let role = &st.roles[r];
        if role.active > 0 && (stage == Stage::Fair || scalars::any(&role.unmet)) {
            let key = role_key(st, r, stage);
            *slot = Some(key);
            roles.insert(key);
        }
    }
    let mut touched_roles: Vec<u32> = Vec::new();
    let mut touched_fws: Vec<u32> = Vec::new();
    for &a in order {
        if roles.is_empty() {
            break;
        }
        if !scalars::allocatable(&st.agents[a as usize].free_total(), &st.mins) {
            continue;
        }
        for key in roles.iter() {
            if offer_to_role(st, stage, key.idx, a, &fw_sorters[key.idx as usize], offers, &mut touched_fws) {
                touched_roles.push(key.idx);
            }
            if !scalars::any(&st.agents[a as usize].free_total()) {
                break;
            }
        }
        for r in touched_roles.drain(..) {
            let r = r as usize;
            let Some(old) = role_keys[r] else { continue };
            if stage == Stage::Guarantee && !scalars::any(&st.roles[r].unmet) {
                roles.remove(&old);
                role_keys[r] = None;
                continue;
            }
            let new = role_key(st, r, stage);
            roles.rekey(&old, new);
            role_keys[r] = Some(new);
        }
        for f in touched_fws.drain(..) {
            let f = f as usize;
            let new = Key::new(st.fw_share(f), st.fws[f].offers, f as u32);
            let fw = &mut st.fws[f];
            fw_sorters[fw.role as usize].rekey(&fw.key, new);
            fw.key = new;
        }
    }
}

/// Offer role `r` what it may get on agent `a`, to its frameworks in DRF
/// order. The first eligible framework takes the reserved and unreserved
/// part (and the revocable part if it accepts it); a later revocable-capable
/// one may take the revocable part. Returns whether anything was offered.
fn offer_to_role(
    st: &mut State<'_>,
    stage: Stage,
    r: u32,
    a: u32,
    fws: &Sorter,
    offers: &mut Offers,
    touched: &mut Vec<u32>,
) -> bool {
    let role = &st.roles[r as usize];
    let agent = &st.agents[a as usize];
    let bucket = agent.reserved.iter().position(|b| b.role == r);
    let room = quota::limit_room(role.limit.as_ref(), &role.allocated);
    let reserved = bucket.map(|b| scalars::min(&agent.reserved[b].free, &room)).unwrap_or(ZERO);
    let room = scalars::sub(&room, &reserved);
    let cap = st.headroom.cap(stage, &role.guarantee, &role.unmet);
    let unreserved = scalars::min(&scalars::min(&agent.free, &cap), &room);
    let base = scalars::add(&reserved, &unreserved);
    let revocable = if stage.offers_revocable() && role.revocable_fws > 0 { agent.revocable } else { ZERO };
    let mut base_left = scalars::any(&base);
    let mut rev_left = scalars::any(&revocable);
    if !base_left && !rev_left {
        return false;
    }
    if !rev_left && !scalars::allocatable(&base, &st.mins) {
        return false;
    }
    let mut given = false;
    for key in fws.iter() {
        let f = key.idx;
        let fw = st.fws[f as usize].input;
        if st.filters.blocks(f, a) || (st.agents[a as usize].gpu && !fw.gpu) {
            continue;
        }
        let take_rev = rev_left && fw.revocable;
        if !base_left && !take_rev {
            continue;
        }
        let grant = Grant {
            reserved: if base_left { reserved } else { ZERO },
            bucket,
            unreserved: if base_left { unreserved } else { ZERO },
            revocable: if take_rev { revocable } else { ZERO },
        };
        let cand = scalars::add(&scalars::add(&grant.reserved, &grant.unreserved), &grant.revocable);
        if !scalars::allocatable(&cand, &st.mins) {
            continue;
        }
        commit(st, stage, r, f, a, grant, offers);
        touched.push(f);
        given = true;
        base_left = false;
        rev_left &= !take_rev;
        if !rev_left {
            break;
        }
    }
    given
}

fn commit(st: &mut State<'_>, stage: Stage, r: u32, f: u32, a: u32, g: Grant, offers: &mut Offers) {
    let agent = &mut st.agents[a as usize];
    let mut reserved_ports = Vec::new();
    if let (Some(b), true) = (g.bucket, scalars::any(&g.reserved)) {
        let bucket = &mut agent.reserved[b];
        bucket.free = scalars::sub(&bucket.free, &g.reserved);
        reserved_ports = std::mem::take(&mut bucket.ports);
    }
    let mut ports = Vec::new();
    if scalars::any(&g.unreserved) {
        agent.free = scalars::sub(&agent.free, &g.unreserved);
        ports = std::mem::take(&mut agent.ports);
    }
    agent.revocable = scalars::sub(&agent.revocable, &g.revocable);

    let held = scalars::add(&g.reserved, &g.unreserved);
    let role = &mut st.roles[r as usize];
    role.allocated = scalars::add(&role.allocated, &held);
    role.offers += 1;
    st.headroom.take(&g.unreserved, &mut role.unmet);
    let fw = &mut st.fws[f as usize];
    fw.allocated = scalars::add(&fw.allocated, &held);
    fw.offers += 1;

    let earlier = match stage {
        Stage::Fair => agent.stage1_offers.iter().find(|(fw, _)| *fw == f).map(|(_, i)| *i),
        Stage::Guarantee => None,
    };
    if let Some(i) = earlier {
        let o = &mut offers.list[i];
        o.merged = true;
        o.unreserved = scalars::add(&o.unreserved, &g.unreserved);
        o.reserved = scalars::add(&o.reserved, &g.reserved);
        o.revocable = scalars::add(&o.revocable, &g.revocable);
        o.ports.extend(ports);
        o.reserved_ports.extend(reserved_ports);
        return;
    }
    if stage == Stage::Guarantee {
        agent.stage1_offers.push((f, offers.list.len()));
    }
    offers.list.push(OfferAcc {
        fw: f,
        agent: a,
        unreserved: g.unreserved,
        ports,
        reserved: g.reserved,
        reserved_ports,
        revocable: g.revocable,
        merged: false,
    });
}

fn into_plan<'a>(st: &State<'a>, offers: Offers) -> AllocationPlan<'a> {
    let input: &'a AllocationInput = st.input;
    let offers = offers
        .list
        .into_iter()
        .map(|o| {
            let fw = st.fws[o.fw as usize].input;
            let agent = &input.agents[o.agent as usize];
            PlannedOffer {
                framework: &fw.name,
                role: &fw.role,
                agent: &agent.name,
                hostname: if agent.hostname.is_empty() { &agent.name } else { &agent.hostname },
                resources: scalars::to_resources(&o.unreserved, finish_ports(o.ports, o.merged)),
                reserved: scalars::to_resources(&o.reserved, finish_ports(o.reserved_ports, o.merged)),
                revocable: scalars::to_resources(&o.revocable, Vec::new()),
            }
        })
        .collect();
    let role_shares = (0..st.roles.len()).map(|r| (st.roles[r].name, st.role_share(r))).collect();
    let framework_shares = (0..st.fws.len())
        .map(|f| {
            let fw = st.fws[f].input;
            ((fw.role.as_str(), fw.name.as_str()), st.fw_share(f))
        })
        .collect();
    AllocationPlan { offers, role_shares, framework_shares }
}

/// Ports taken from one bucket are already normalized; merged ones are not.
fn finish_ports(ports: Vec<PortRange>, merged: bool) -> Vec<PortRange> {
    if merged {
        normalize_ports(ports)
    } else {
        ports
    }
}
