//! Status writes of controllers: a state transition on the latest object,
//! retried on conflicts, so history is never lost.
//!
//! Owns [`transition_task`]. It must not decide which transition to make.

use meseta_client::{Api, Error};
use meseta_schemas::kinds::{Task, TaskState};
use meseta_schemas::state_machine::transition;
use meseta_schemas::Time;

/// Moves `task` through `chain` (e.g. `[KILLING, KILLED]`) with `message`,
/// writing through the `status` subresource with the object's
/// resourceVersion. On a conflict the latest object is read again and the
/// write retried as long as `still(&latest)` holds. Returns the written
/// task, or `None` when the task is gone, `still` no longer holds, or the
/// transition is no longer legal.
pub async fn transition_task(
    api: &Api<Task>,
    task: &Task,
    chain: &[TaskState],
    message: &str,
    now: Time,
    still: impl Fn(&Task) -> bool,
) -> Result<Option<Task>, Error> {
    let mut current = task.clone();
    for _ in 0..8 {
        if !still(&current) {
            return Ok(None);
        }
        let mut status = current.status.clone().unwrap_or_default();
        for &to in chain {
            match transition(&status, to, message, now) {
                Ok(next) => status = next,
                Err(_) => return Ok(None),
            }
        }
        let mut next = current.clone();
        next.status = Some(status);
        let ns = current.metadata.namespace.clone().unwrap_or_default();
        let api_ns = Api::<Task>::namespaced(api.client().clone(), ns);
        match api_ns.replace_status(&next).await {
            Ok(written) => return Ok(Some(written)),
            Err(e) if e.is_conflict() => match api_ns.get_opt(&current.metadata.name).await? {
                Some(latest) => current = latest,
                None => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
