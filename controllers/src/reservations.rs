//! Admission of dynamic `Reservation` objects: a Pending reservation becomes
//! Ready when its agent's unreserved free resources cover it, Failed (with a
//! message naming what is short) otherwise.
//!
//! Owns the pure decision [`admit`]; the allocator controller runs it each
//! cycle on its own caches, so an admitted reservation and the offers made
//! in the same cycle never claim the same resources. It must not do I/O.
//!
//! # Rules
//!
//! - Free unreserved = agent total − static reservations (all roles) −
//!   Ready reservations − what tasks hold out of unreserved resources (the
//!   reservation's own role included: a role cannot reserve what its own
//!   tasks already use unreserved). Outstanding offers do not count: a
//!   reservation wins, and the allocator rescinds offers it overlaps.
//! - Pending reservations are admitted oldest first; each one admitted
//!   lowers what the next can take.
//! - Ready and Failed are final: a Failed reservation is retried only when
//!   re-created. A deleted reservation frees its resources (it is simply no
//!   longer counted).
//! - Agent static reservations (`spec.reservations`) need no object.

use std::collections::BTreeMap;

use meseta_schemas::allocation::AllocationInput;
use meseta_schemas::kinds::{Reservation, ReservationState, ReservationStatus};
use meseta_schemas::resources::SCALARS;
use meseta_schemas::Resources;

/// Decisions for the Pending reservations of `pending` (already ordered
/// oldest first), given a snapshot built with every Ready reservation,
/// task and outstanding offer. Returns `(index into pending, new status)`.
pub fn admit(input: &AllocationInput, pending: &[&Reservation]) -> Vec<(usize, ReservationStatus)> {
    let mut free: BTreeMap<&str, Resources> = input
        .agents
        .iter()
        .map(|a| {
            let reserved = a
                .static_reservations
                .values()
                .chain(a.dynamic_reservations.values())
                .fold(Resources::default(), |acc, r| acc.add(r));
            (a.name.as_str(), a.total.saturating_sub(&reserved).saturating_sub(&a.used.unreserved))
        })
        .collect();
    let mut out = Vec::new();
    for (i, rsv) in pending.iter().enumerate() {
        let want = &rsv.spec.resources;
        let Some(room) = free.get_mut(rsv.spec.agent.as_str()) else {
            let message = format!("agent {} does not exist", rsv.spec.agent);
            out.push((i, ReservationStatus { state: ReservationState::Failed, message }));
            continue;
        };
        if want.fits(room) {
            *room = room.saturating_sub(want);
            let message = format!("reserved on agent {}", rsv.spec.agent);
            out.push((i, ReservationStatus { state: ReservationState::Ready, message }));
            continue;
        }
        let (w, h) = (want.scalar_values(), room.scalar_values());
        let mut short: Vec<String> = (0..4)
            .filter(|&k| w[k] > h[k] + 1e-9)
            .map(|k| format!("{} (asked {}, {} unreserved free)", SCALARS[k], w[k], h[k]))
            .collect();
        if !want.ports.iter().all(|r| meseta_schemas::resources::ports_contain(&room.ports, r)) {
            short.push("ports (not all free and unreserved)".into());
        }
        let message = format!("agent {} is short of {}", rsv.spec.agent, short.join(", "));
        out.push((i, ReservationStatus { state: ReservationState::Failed, message }));
    }
    out
}

#[cfg(test)]
mod tests {
    use meseta_schemas::allocation::AgentInput;
    use meseta_schemas::kinds::ReservationSpec;

    use super::*;

    fn rsv(cpus: f64) -> Reservation {
        Reservation::new("r", ReservationSpec { agent: "a".into(), resources: Resources::scalars(cpus, 0.0, 0.0, 0.0) })
    }

    #[test]
    fn admits_while_room_remains_then_names_what_is_short() {
        let mut agent =
            AgentInput { name: "a".into(), total: Resources::scalars(8.0, 1024.0, 0.0, 0.0), ..Default::default() };
        agent.static_reservations.insert("ops".into(), Resources::scalars(2.0, 0.0, 0.0, 0.0));
        agent.dynamic_reservations.insert("web".into(), Resources::scalars(1.0, 0.0, 0.0, 0.0));
        agent.used.unreserved = Resources::scalars(1.0, 0.0, 0.0, 0.0);
        let input = AllocationInput { agents: vec![agent], ..Default::default() };
        let (a, b, c) = (rsv(3.0), rsv(1.5), rsv(1.0));
        let out = admit(&input, &[&a, &b, &c]);
        assert_eq!(out[0].1.state, ReservationState::Ready);
        assert_eq!(out[1].1.state, ReservationState::Failed);
        assert!(out[1].1.message.contains("cpus (asked 1.5, 1 unreserved free)"), "{}", out[1].1.message);
        assert_eq!(out[2].1.state, ReservationState::Ready);
        let mut lost = rsv(1.0);
        lost.spec.agent = "nowhere".into();
        assert_eq!(admit(&input, &[&lost])[0].1.state, ReservationState::Failed);
    }
}
