//! Table tests of the offer [`Ledger`]: an offer is charged while it may
//! stand or its tasks may be uncached, and no longer.

use meseta_schemas::kinds::OfferSpec;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(2);

fn offer(name: &str) -> Offer {
    Offer::new(name, OfferSpec { framework: "fw".into(), agent: "a1".into(), ..Default::default() }).in_namespace("r")
}

fn names(offers: &[Offer]) -> Vec<&str> {
    let mut v: Vec<&str> = offers.iter().map(|o| o.metadata.name.as_str()).collect();
    v.sort_unstable();
    v
}

/// `(standing, consumed)` names after a call.
fn look(l: &mut Ledger, cached: &[&str], gone: &[&str], now: Instant) -> (Vec<String>, Vec<String>) {
    let gone: Vec<ObjectRef> = gone.iter().map(|n| key(&offer(n))).collect();
    let b = l.believe(cached.iter().map(|n| offer(n)).collect(), &gone, now, TIMEOUT, GRACE);
    let own = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
    (own(names(&b.standing)), own(names(&b.consumed)))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn a_created_offer_answered_before_any_cycle_saw_it_is_charged_for_the_grace_only() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    l.created(&offer("o"), t0);
    // The watch showed it come and go between two cycles (declined at once).
    assert_eq!(look(&mut l, &[], &["o"], t0 + Duration::from_millis(50)), (s(&[]), s(&["o"])));
    assert_eq!(look(&mut l, &[], &[], t0 + Duration::from_secs(1)), (s(&[]), s(&["o"])));
    // Past the grace nothing holds the agent any more, long before the offer timeout.
    assert_eq!(look(&mut l, &[], &[], t0 + Duration::from_secs(3)), (s(&[]), s(&[])));
}

#[test]
fn a_created_offer_the_cache_has_not_shown_yet_stands() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    l.created(&offer("o"), t0);
    assert_eq!(look(&mut l, &[], &[], t0 + Duration::from_millis(50)), (s(&["o"]), s(&[])));
    assert_eq!(look(&mut l, &["o"], &[], t0 + Duration::from_millis(100)), (s(&["o"]), s(&[])));
    // Then accepted: consumed for the grace.
    assert_eq!(look(&mut l, &[], &["o"], t0 + Duration::from_millis(200)), (s(&[]), s(&["o"])));
    assert_eq!(look(&mut l, &[], &[], t0 + Duration::from_secs(3)), (s(&[]), s(&[])));
}

#[test]
fn a_created_offer_never_shown_nor_reported_is_dropped_once_stale() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    l.created(&offer("o"), t0);
    assert_eq!(look(&mut l, &[], &[], t0 + TIMEOUT), (s(&["o"]), s(&[])));
    assert_eq!(look(&mut l, &[], &[], t0 + TIMEOUT + GRACE), (s(&[]), s(&[])));
}

#[test]
fn a_rescinded_offer_is_rescinded_once_and_not_believed_while_the_cache_shows_it() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    // Cached offer rescinded: gone from the cycle at once, nothing charged after.
    assert_eq!(look(&mut l, &["c"], &[], t0), (s(&["c"]), s(&[])));
    l.rescinded(key(&offer("c")), t0);
    assert_eq!(look(&mut l, &["c"], &[], t0 + Duration::from_millis(50)), (s(&[]), s(&[])));
    assert_eq!(look(&mut l, &[], &["c"], t0 + Duration::from_millis(100)), (s(&[]), s(&[])));
    // A created offer the cache never showed, rescinded (say, expired): it is
    // no longer standing, so the next cycle does not rescind it again, and
    // it is charged for the grace in case an accept won the race.
    l.created(&offer("n"), t0);
    l.rescinded(key(&offer("n")), t0 + Duration::from_secs(1));
    let t1 = t0 + Duration::from_millis(1100);
    assert_eq!(look(&mut l, &[], &[], t1), (s(&[]), s(&["n"])));
    assert_eq!(look(&mut l, &[], &[], t1 + GRACE), (s(&[]), s(&[])));
}

#[test]
fn a_cached_offer_that_vanishes_is_consumed_for_the_grace() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    assert_eq!(look(&mut l, &["o"], &[], t0), (s(&["o"]), s(&[])));
    assert_eq!(look(&mut l, &[], &["o"], t0 + Duration::from_millis(10)), (s(&[]), s(&["o"])));
    assert_eq!(look(&mut l, &[], &[], t0 + Duration::from_secs(3)), (s(&[]), s(&[])));
}
