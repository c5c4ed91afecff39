//! Leader election against a real apiserver: one leader among candidates,
//! takeover after the leader dies, immediate handover on step-down.

mod common;

use std::time::Duration;

use common::*;
use meseta_client::leader::{LeaderElector, LeaderHandle};
use meseta_schemas::Lease;

const LIMIT: Duration = Duration::from_secs(20);
const LEASE: Duration = Duration::from_secs(2);

fn candidate(client: &Client, identity: &str) -> LeaderHandle {
    let api: Api<Lease> = Api::namespaced(client.clone(), "meseta-system");
    LeaderElector::new(api, "controllers", identity, LEASE).spawn()
}

async fn holder(client: &Client) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "meseta-system");
    api.get("controllers").await.unwrap().spec.holder_identity
}

/// Waits for one of `handles` to lead and returns its index.
async fn one_leader(handles: &[&LeaderHandle]) -> usize {
    eventually(LIMIT, "a leader", || {
        let leaders: Vec<_> = handles.iter().enumerate().filter(|(_, h)| h.is_leader()).map(|(i, _)| i).collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        async move { leaders.first().copied() }
    })
    .await
}

#[tokio::test]
async fn exactly_one_leader_and_takeover_after_the_leader_dies() {
    let (_server, client) = start().await;
    let a = candidate(&client, "a");
    let b = candidate(&client, "b");
    let first = one_leader(&[&a, &b]).await;

    // Over several renew periods, the same single leader stays.
    for _ in 0..40 {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders at once");
        assert_eq!(one_leader(&[&a, &b]).await, first, "leadership moved without a failure");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (leader, follower, follower_id) = if first == 0 { (a, b, "b") } else { (b, a, "a") };
    assert_eq!(holder(&client).await.as_deref(), Some(if first == 0 { "a" } else { "b" }));

    // The leader dies without releasing: the follower waits out the lease.
    drop(leader);
    tokio::time::timeout(LIMIT, follower.wait_until_leader()).await.expect("the follower took over");
    assert_eq!(holder(&client).await.as_deref(), Some(follower_id));
    let api: Api<Lease> = Api::namespaced(client.clone(), "meseta-system");
    assert_eq!(api.get("controllers").await.unwrap().spec.lease_transitions, 1);
}

#[tokio::test]
async fn stepping_down_hands_over_without_waiting_for_expiry() {
    let (_server, client) = start().await;
    let a = candidate(&client, "a");
    tokio::time::timeout(LIMIT, a.wait_until_leader()).await.expect("a leads alone");
    let b = candidate(&client, "b");
    let mut b_leading = b.subscribe();
    assert!(!*b_leading.borrow());

    a.step_down().await;
    assert_eq!(holder(&client).await, None, "a released the lease");
    tokio::time::timeout(LIMIT, b_leading.wait_for(|l| *l)).await.expect("b took over").unwrap();
    assert_eq!(holder(&client).await.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_leader_steps_down_when_it_cannot_renew() {
    let (mut server, client) = start().await;
    let a = candidate(&client, "a");
    tokio::time::timeout(LIMIT, a.wait_until_leader()).await.expect("a leads");
    let mut leading = a.subscribe();
    server.stop().await;
    tokio::time::timeout(LIMIT, leading.wait_for(|l| !*l)).await.expect("a stepped down").unwrap();
}
