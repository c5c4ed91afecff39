//! The watcher's state machine against a scripted list/watch source.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use meseta_schemas::{ListMeta, ObjectMeta, Role};

use super::*;
use crate::error::StatusBody;

enum Reply {
    List(crate::Result<ObjectList<Role>>),
    Watch(crate::Result<Vec<crate::Result<WatchEvent<Role>>>>),
}

#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Reply>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn new(replies: Vec<Reply>) -> Self {
        Fake { script: Arc::new(Mutex::new(replies.into())), calls: Arc::default() }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn next(&self, call: String) -> Option<Reply> {
        self.calls.lock().unwrap().push(call);
        self.script.lock().unwrap().pop_front()
    }
}

impl ListWatch<Role> for Fake {
    fn list_all<'a>(&'a self, _: &'a ListParams) -> BoxFuture<'a, crate::Result<ObjectList<Role>>> {
        match self.next("list".into()) {
            Some(Reply::List(r)) => futures::future::ready(r).boxed(),
            Some(Reply::Watch(_)) => panic!("the watcher listed where the script expected a watch"),
            None => futures::future::pending().boxed(),
        }
    }

    fn watch<'a>(&'a self, _: &'a WatchParams, rv: &'a str) -> BoxFuture<'a, crate::Result<WatchStream<Role>>> {
        match self.next(format!("watch@{rv}")) {
            Some(Reply::Watch(r)) => futures::future::ready(r.map(|evs| futures::stream::iter(evs).boxed())).boxed(),
            Some(Reply::List(_)) => panic!("the watcher watched where the script expected a list"),
            None => futures::future::pending().boxed(),
        }
    }
}

fn role(name: &str, rv: u64) -> Role {
    Role {
        metadata: ObjectMeta { name: name.into(), resource_version: Some(rv.to_string()), ..Default::default() },
        ..Default::default()
    }
}

fn list(rv: u64, items: Vec<Role>) -> Reply {
    Reply::List(Ok(ObjectList {
        metadata: ListMeta { resource_version: Some(rv.to_string()), ..Default::default() },
        items,
        ..Default::default()
    }))
}

fn gone() -> crate::Error {
    crate::Error::api(StatusBody { reason: "Expired".into(), code: 410, ..Default::default() }, 410)
}

fn unavailable() -> crate::Error {
    crate::Error::api(StatusBody::from_http(503, "down"), 503)
}

fn names(ev: &Event<Role>) -> Vec<String> {
    ev.objects().map(|r| r.metadata.name.clone()).collect()
}

async fn take(fake: &Fake, n: usize) -> Vec<Result<Event<Role>, Error>> {
    watch_source(fake.clone(), WatchParams::default()).take(n).collect().await
}

#[tokio::test]
async fn lists_then_watches_from_the_list_version() {
    let fake = Fake::new(vec![
        list(10, vec![role("a", 3), role("b", 7)]),
        Reply::Watch(Ok(vec![
            Ok(WatchEvent::Added(role("c", 11))),
            Ok(WatchEvent::Modified(role("a", 12))),
            Ok(WatchEvent::Deleted(role("b", 13))),
        ])),
    ]);
    let events = take(&fake, 4).await;
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    assert!(matches!(&events[0], Event::Restarted(v) if v.len() == 2));
    assert!(matches!(&events[1], Event::Applied(r) if r.metadata.name == "c"));
    assert!(matches!(&events[2], Event::Applied(r) if r.revision() == 12));
    assert!(matches!(&events[3], Event::Deleted(r) if r.metadata.name == "b"));
    assert_eq!(fake.calls(), vec!["list", "watch@10"]);
}

/// One delivered event as (kind, name, version).
fn seen(ev: &Event<Role>) -> (&'static str, String, u64) {
    match ev {
        Event::Applied(r) => ("applied", r.metadata.name.clone(), r.revision()),
        Event::Deleted(r) => ("deleted", r.metadata.name.clone(), r.revision()),
        Event::Restarted(v) => ("restarted", String::new(), v.len() as u64),
    }
}

#[tokio::test]
async fn what_the_list_already_showed_is_not_delivered_again() {
    // The list reports version 10 but its scan saw `a` written at 12 and
    // `b` re-created at 13 (deleted at 11): the watch from 10 replays those.
    let fake = Fake::new(vec![
        list(10, vec![role("a", 12), role("b", 13), role("old", 4)]),
        Reply::Watch(Ok(vec![
            Ok(WatchEvent::Deleted(role("b", 11))),
            Ok(WatchEvent::Modified(role("a", 11))),
            Ok(WatchEvent::Added(role("c", 11))),
            Ok(WatchEvent::Modified(role("a", 12))),
            Ok(WatchEvent::Added(role("b", 13))),
            Ok(WatchEvent::Modified(role("a", 14))),
            Ok(WatchEvent::Deleted(role("b", 15))),
        ])),
    ]);
    let events: Vec<_> = take(&fake, 4).await.into_iter().map(Result::unwrap).collect();
    let seen: Vec<_> = events.iter().map(seen).collect();
    assert_eq!(
        seen,
        vec![
            ("restarted", String::new(), 3),
            ("applied", "c".into(), 11),
            ("applied", "a".into(), 14),
            ("deleted", "b".into(), 15),
        ]
    );
}

#[tokio::test]
async fn replays_are_dropped_across_a_resumed_watch_and_forgotten_after() {
    let fake = Fake::new(vec![
        list(10, vec![role("a", 12)]),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(role("c", 11)))])),
        // Resumed from 11: the change of `a` at 12 is still a replay.
        Reply::Watch(Ok(vec![Ok(WatchEvent::Modified(role("a", 12))), Ok(WatchEvent::Modified(role("a", 16)))])),
    ]);
    let events: Vec<_> = take(&fake, 3).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(seen(&events[1]), ("applied", "c".into(), 11));
    assert_eq!(seen(&events[2]), ("applied", "a".into(), 16));
    assert_eq!(fake.calls(), vec!["list", "watch@10", "watch@11"]);

    let mut ahead = Ahead::of("10", &[role("a", 12), role("b", 3)]);
    assert!(!ahead.replays(&role("b", 3)), "an object older than the list is never ahead of it");
    assert!(ahead.replays(&role("a", 12)));
    assert!(!ahead.replays(&role("a", 12)), "past the newest listed version nothing is dropped");
    let mut odd = Ahead::of("not-a-number", &[role("a", 12)]);
    assert!(!odd.replays(&role("a", 12)), "versions that are not numbers are never compared");
}

#[tokio::test]
async fn a_closed_watch_resumes_from_the_last_version_and_bookmark() {
    let fake = Fake::new(vec![
        list(10, vec![]),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(role("a", 11)))])),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Bookmark { resource_version: "20".into() })])),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Modified(role("a", 21)))])),
    ]);
    let events = take(&fake, 3).await;
    assert_eq!(events.len(), 3);
    assert_eq!(fake.calls(), vec!["list", "watch@10", "watch@11", "watch@20"]);
}

#[tokio::test]
async fn gone_on_watch_start_relists_without_an_error() {
    let fake = Fake::new(vec![
        list(10, vec![role("a", 3)]),
        Reply::Watch(Err(gone())),
        list(30, vec![role("b", 25)]),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(role("c", 31)))])),
    ]);
    let events = take(&fake, 3).await;
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(names(&events[0]), vec!["a"]);
    assert!(matches!(&events[1], Event::Restarted(_)));
    assert_eq!(names(&events[1]), vec!["b"]);
    assert_eq!(names(&events[2]), vec!["c"]);
    assert_eq!(fake.calls(), vec!["list", "watch@10", "list", "watch@30"]);
}

#[tokio::test]
async fn an_expired_error_event_relists() {
    let expired = StatusBody { reason: "Expired".into(), code: 410, message: "too old".into(), ..Default::default() };
    let fake = Fake::new(vec![
        list(10, vec![]),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(role("a", 11))), Ok(WatchEvent::Error(Box::new(expired)))])),
        list(40, vec![role("a", 35)]),
    ]);
    let events = take(&fake, 3).await;
    assert!(matches!(events[2].as_ref().unwrap(), Event::Restarted(v) if v[0].revision() == 35));
    assert_eq!(fake.calls(), vec!["list", "watch@10", "list"]);
}

#[tokio::test]
async fn errors_are_yielded_and_the_same_step_is_retried() {
    let other = StatusBody { reason: "InternalError".into(), code: 500, ..Default::default() };
    let fake = Fake::new(vec![
        Reply::List(Err(unavailable())),
        list(10, vec![]),
        Reply::Watch(Err(unavailable())),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(role("a", 11))), Err(unavailable())])),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Error(Box::new(other)))])),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(role("b", 12)))])),
    ]);
    let events = take(&fake, 7).await;
    assert!(matches!(events[0], Err(Error::InitialList { .. })));
    assert!(matches!(events[1], Ok(Event::Restarted(_))));
    assert!(matches!(events[2], Err(Error::WatchStart { .. })));
    assert!(matches!(events[3], Ok(Event::Applied(_))));
    assert!(matches!(events[4], Err(Error::Watch { .. })));
    assert!(matches!(events[5], Err(Error::WatchError { .. })));
    assert!(matches!(events[6], Ok(Event::Applied(_))));
    assert_eq!(fake.calls(), vec!["list", "list", "watch@10", "watch@10", "watch@11", "watch@11"]);
}
