//! Cron schedules: when a cron job fires. Pure; the time is passed in.
//!
//! Owns parsing five-field expressions (UTC) and finding the latest firing
//! in a window. It must not decide what a firing does (collision policies
//! live in the job planner).

use croner::Cron;
use meseta_schemas::Time;

/// The latest time `schedule` fires in `(after, now]`, if any. Missed
/// firings in between collapse into this one (a controller that was down
/// runs a job once, not once per missed slot). Errors name the schedule.
pub fn latest_fire(schedule: &str, after: Time, now: Time) -> Result<Option<Time>, String> {
    let cron = Cron::new(schedule).parse().map_err(|e| format!("schedule {schedule:?}: {e}"))?;
    let mut last = None;
    let mut from = after;
    // Bounded walk: a schedule firing every minute over a week is 10,080 steps.
    for _ in 0..20_000 {
        match cron.find_next_occurrence(&from, false) {
            Ok(t) if t <= now => {
                last = Some(t);
                from = t;
            }
            _ => return Ok(last),
        }
    }
    Ok(last)
}

/// The next time `schedule` fires strictly after `after`.
pub fn next_fire(schedule: &str, after: Time) -> Result<Time, String> {
    let cron = Cron::new(schedule).parse().map_err(|e| format!("schedule {schedule:?}: {e}"))?;
    cron.find_next_occurrence(&after, false).map_err(|e| format!("schedule {schedule:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        s.parse().unwrap()
    }

    #[test]
    fn fires_on_schedule_and_collapses_missed_runs() {
        let every5 = "*/5 * * * *";
        assert_eq!(latest_fire(every5, t("2024-01-01T00:00:00Z"), t("2024-01-01T00:04:59Z")).unwrap(), None);
        assert_eq!(
            latest_fire(every5, t("2024-01-01T00:00:00Z"), t("2024-01-01T00:05:00Z")).unwrap(),
            Some(t("2024-01-01T00:05:00Z"))
        );
        assert_eq!(
            latest_fire(every5, t("2024-01-01T00:00:00Z"), t("2024-01-01T00:17:00Z")).unwrap(),
            Some(t("2024-01-01T00:15:00Z"))
        );
        assert_eq!(next_fire("0 3 * * MON", t("2024-01-01T03:00:00Z")).unwrap(), t("2024-01-08T03:00:00Z"));
        assert!(latest_fire("bad", t("2024-01-01T00:00:00Z"), t("2024-01-02T00:00:00Z")).unwrap_err().contains("bad"));
    }
}
