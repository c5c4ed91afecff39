//! Table tests of the offer [`Ledger`]: an offer is charged while it may
//! stand or its tasks may be uncached, and no longer.

use meseta_schemas::kinds::OfferSpec;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(2);

fn offer(name: &str) -> Offer {
    Offer::new(name, OfferSpec { framework: "fw".into(), agent: "a1".into(), ..Default::default() }).in_namespace("r")
}

fn names(offers: &[Arc<Offer>]) -> Vec<&str> {
    let mut v: Vec<&str> = offers.iter().map(|o| o.metadata.name.as_str()).collect();
    v.sort_unstable();
    v
}

/// `(standing, consumed)` names after a call (deletion revisions unknown).
fn look(l: &mut Ledger, cached: &[&str], gone: &[&str], now: Instant) -> (Vec<String>, Vec<String>) {
    let gone: Vec<(&str, u64)> = gone.iter().map(|n| (*n, 0)).collect();
    look_at(l, cached, &gone, 0, now)
}

/// [`look`] with the revisions that deleted the gone offers and the newest
/// revision of the tasks cache.
fn look_at(
    l: &mut Ledger,
    cached: &[&str],
    gone: &[(&str, u64)],
    tasks_seen: u64,
    now: Instant,
) -> (Vec<String>, Vec<String>) {
    let gone: Vec<Gone> = gone.iter().map(|(n, rev)| (key(&offer(n)), *rev)).collect();
    let b = l.believe(cached.iter().map(|n| Arc::new(offer(n))).collect(), &gone, tasks_seen, now, TIMEOUT, GRACE);
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

#[test]
fn a_consumed_offer_is_released_once_the_tasks_cache_reaches_its_deletion() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut l = Ledger::default();
    assert_eq!(look_at(&mut l, &["o", "p"], &[], 10, ms(0)), (s(&["o", "p"]), s(&[])));
    // Both answered: o at revision 20, p at revision 25.
    assert_eq!(look_at(&mut l, &[], &[("o", 20), ("p", 25)], 19, ms(10)), (s(&[]), s(&["o", "p"])));
    // The tasks cache reached 20: whatever o's accept bound is cached now.
    assert_eq!(look_at(&mut l, &[], &[], 20, ms(20)), (s(&[]), s(&["p"])));
    assert_eq!(look_at(&mut l, &[], &[], 30, ms(30)), (s(&[]), s(&[])));
}

#[test]
fn a_created_offer_answered_unseen_is_released_by_revision_too() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    l.created(&offer("o"), t0);
    let later = t0 + Duration::from_millis(50);
    assert_eq!(look_at(&mut l, &[], &[("o", 40)], 39, later), (s(&[]), s(&["o"])));
    assert_eq!(look_at(&mut l, &[], &[], 41, later), (s(&[]), s(&[])));
}

#[test]
fn an_unknown_deletion_revision_waits_for_the_grace() {
    let t0 = Instant::now();
    let mut l = Ledger::default();
    assert_eq!(look_at(&mut l, &["o"], &[], 10, t0), (s(&["o"]), s(&[])));
    assert_eq!(look_at(&mut l, &[], &[("o", 0)], 1_000, t0), (s(&[]), s(&["o"])));
    assert_eq!(look_at(&mut l, &[], &[], 1_000, t0 + Duration::from_secs(1)), (s(&[]), s(&["o"])));
    assert_eq!(look_at(&mut l, &[], &[], 1_000, t0 + Duration::from_secs(3)), (s(&[]), s(&[])));
}
