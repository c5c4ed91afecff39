//! Watches narrowed by `fieldSelector=spec.agent=X` through HTTP: what each
//! agent's watch sends equals filtering the full event stream with the
//! selector (transitions included), next to unindexed watches; moves between
//! agents; replay from a resourceVersion; bookmarks that follow other
//! agents' writes.

mod common;

use std::collections::HashMap;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// What a test compares: type, name, resourceVersion, agent.
type Seen = (String, String, u64, String);

fn seen(event: &Value) -> Seen {
    let obj = &event["object"];
    (
        event["type"].as_str().unwrap().to_string(),
        obj["metadata"]["name"].as_str().unwrap().to_string(),
        rv(obj),
        agent(obj).to_string(),
    )
}

fn agent(obj: &Value) -> &str {
    obj["spec"]["agent"].as_str().unwrap_or("")
}

fn agent_task(name: &str, agent: Option<&str>) -> Value {
    let mut t = task("w", name);
    if let Some(a) = agent {
        t["spec"]["agent"] = json!(a);
    }
    t
}

fn watch_path(from: u64, query: &str) -> String {
    format!("{}?watch=true&resourceVersion={from}{query}", tasks("w"))
}

/// The events a watch whose selector is `matches` gets out of the full
/// stream `all`: `ADDED` when an object starts matching, `DELETED` (its last
/// matching state at the event's revision) when it stops.
fn filtered(all: &[Value], matches: impl Fn(&Value) -> bool) -> Vec<Seen> {
    let mut last: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::new();
    for event in all {
        let (kind, name, revision, _) = seen(event);
        let obj = &event["object"];
        let old = last.get(&name).map(&matches);
        let now = matches(obj);
        let sent = match (kind.as_str(), old, now) {
            ("DELETED", Some(true), _) => Some(("DELETED", last[&name].clone())),
            ("ADDED", _, true) => Some(("ADDED", obj.clone())),
            ("MODIFIED", Some(true), true) => Some(("MODIFIED", obj.clone())),
            ("MODIFIED", Some(false), true) => Some(("ADDED", obj.clone())),
            ("MODIFIED", Some(true), false) => Some(("DELETED", last[&name].clone())),
            _ => None,
        };
        if let Some((kind, obj)) = sent {
            out.push((kind.to_string(), name.clone(), revision, agent(&obj).to_string()));
        }
        if kind == "DELETED" {
            last.remove(&name);
        } else {
            last.insert(name, obj.clone());
        }
    }
    out
}

async fn take(events: &mut Events, n: usize) -> Vec<Seen> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(seen(&events.next_event().await));
    }
    out
}

async fn patch_agent(api: &Api, name: &str, agent: Option<&str>) -> Value {
    let body = json!({"spec": {"agent": agent}});
    let resp = api.patch(&task_path("w", name), "application/merge-patch+json", &body).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
    resp.body
}

#[tokio::test]
async fn a_task_moving_between_agents_leaves_one_watch_and_joins_the_other() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    // A revision above 0, so that watches resume from it rather than list.
    let start = rv(&api.post(&tasks("w"), &agent_task("before", Some("c"))).await.body);
    let mut a = Events::open(&api, &watch_path(start, "&fieldSelector=spec.agent%3Da")).await;
    let mut b = Events::open(&api, &watch_path(start, "&fieldSelector=spec.agent%3Db")).await;
    let created = rv(&api.post(&tasks("w"), &agent_task("t", Some("a"))).await.body);
    api.post(&tasks("w"), &agent_task("elsewhere", Some("c"))).await;
    let moved = rv(&patch_agent(&api, "t", Some("b")).await);
    let deleted = rv(&api.delete(&task_path("w", "t")).await.body);

    assert_eq!(seen(&a.next_event().await), ("ADDED".into(), "t".into(), created, "a".into()));
    let left = a.next_event().await;
    assert_eq!(seen(&left), ("DELETED".into(), "t".into(), moved, "a".into()), "its last state at a");
    assert_eq!(seen(&b.next_event().await), ("ADDED".into(), "t".into(), moved, "b".into()));
    assert_eq!(seen(&b.next_event().await), ("DELETED".into(), "t".into(), deleted, "b".into()));

    // Resuming a's watch from before the move replays the same events.
    let mut again = Events::open(&api, &watch_path(start, "&fieldSelector=spec.agent%3Da")).await;
    let replayed = take(&mut again, 2).await;
    assert_eq!(replayed, vec![("ADDED".into(), "t".into(), created, "a".into()), seen(&left)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_watches_and_unindexed_watches_send_what_their_selectors_say() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let start = rv(&api.post(&tasks("w"), &agent_task("before", Some("zz"))).await.body);
    let agents = ["a0", "a1", "a2", "a3"];
    let mut all = Events::open(&api, &watch_path(start, "")).await;
    let mut by_agent = Vec::new();
    for a in agents {
        by_agent.push((a, Events::open(&api, &watch_path(start, &format!("&fieldSelector=spec.agent%3D{a}"))).await));
    }
    let mut not_a1 = Events::open(&api, &watch_path(start, "&fieldSelector=spec.agent!%3Da1")).await;
    let mut a1_but_t3 =
        Events::open(&api, &watch_path(start, "&fieldSelector=spec.agent%3Da1,metadata.name!%3Dt3")).await;
    let mut unbound = Events::open(&api, &watch_path(start, "&fieldSelector=spec.agent%3D")).await;

    let mut rng = StdRng::seed_from_u64(11);
    let mut live: Vec<String> = Vec::new();
    let pick = |rng: &mut StdRng| match rng.random_range(0..6) {
        0 => None,
        n => Some(agents[(n - 1) % agents.len()]),
    };
    for i in 0..240 {
        match rng.random_range(0..10) {
            0..=2 if live.len() < 12 => {
                let name = format!("t{i}");
                api.post(&tasks("w"), &agent_task(&name, pick(&mut rng))).await;
                live.push(name);
            }
            3 if !live.is_empty() => {
                let name = live.swap_remove(rng.random_range(0..live.len()));
                api.delete(&task_path("w", &name)).await;
            }
            4 if !live.is_empty() => {
                let name = &live[rng.random_range(0..live.len())];
                let body = json!({"spec": {"command": format!("echo {i}")}});
                api.patch(&task_path("w", name), "application/merge-patch+json", &body).await;
            }
            _ if !live.is_empty() => {
                let name = live[rng.random_range(0..live.len())].clone();
                patch_agent(&api, &name, pick(&mut rng)).await;
            }
            _ => {}
        }
    }
    // A last write every watch sees, so each knows where the test ends.
    let end_rv = rv(&api.post(&tasks("w"), &agent_task("end", Some("a1"))).await.body);
    let end_rv_unbound = rv(&api.post(&tasks("w"), &agent_task("end2", None)).await.body);
    let mut full = Vec::new();
    loop {
        let event = all.next_event().await;
        let done = rv(&event["object"]) == end_rv_unbound;
        full.push(event);
        if done {
            break;
        }
    }
    for (a, events) in &mut by_agent {
        let want = filtered(&full, |o| agent(o) == *a);
        assert_eq!(take(events, want.len()).await, want, "agent {a}");
    }
    let want = filtered(&full, |o| agent(o) != "a1");
    assert!(want.len() > 100, "{} events", want.len());
    assert_eq!(take(&mut not_a1, want.len()).await, want, "spec.agent!=a1");
    let want = filtered(&full, |o| agent(o) == "a1" && o["metadata"]["name"] != "t3");
    assert_eq!(take(&mut a1_but_t3, want.len()).await, want, "spec.agent=a1,metadata.name!=t3");
    assert_eq!(want.last().map(|s| s.2), Some(end_rv));
    let want = filtered(&full, |o| agent(o).is_empty());
    assert_eq!(take(&mut unbound, want.len()).await, want, "spec.agent=");
    assert_eq!(want.last().map(|s| s.2), Some(end_rv_unbound));
}

#[tokio::test]
async fn bookmarks_of_an_agent_watch_follow_other_agents_writes() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let mine = rv(&api.post(&tasks("w"), &agent_task("mine", Some("a"))).await.body);
    let mut ev = Events::open(&api, &watch_path(mine, "&fieldSelector=spec.agent%3Da&allowWatchBookmarks=true")).await;
    let mut others = 0;
    for i in 0..5 {
        others = rv(&api.post(&tasks("w"), &agent_task(&format!("other{i}"), Some("b"))).await.body);
    }
    // Bookmarks come every second in tests; each is at most where the
    // watch really is, and they reach the other agent's last write.
    loop {
        let b = ev.next_event().await;
        assert_eq!(b["type"], "BOOKMARK", "no event of agent b is sent: {b}");
        let at = rv(&b["object"]);
        assert!(at >= mine && at <= others, "{at}");
        if at == others {
            break;
        }
    }
    let next = rv(&api.post(&tasks("w"), &agent_task("mine2", Some("a"))).await.body);
    loop {
        let e = ev.next_event().await;
        if e["type"] != "BOOKMARK" {
            assert_eq!(seen(&e), ("ADDED".into(), "mine2".into(), next, "a".into()));
            break;
        }
    }
}
