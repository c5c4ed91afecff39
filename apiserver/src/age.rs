//! Object ages in the short form `kubectl get` prints in its AGE column (`45s`, `3m12s`, `5h2m`,
//! `3d4h`, `89d`, `2y3d`), so table output reads the same as Kubernetes'.
//!
//! Formatting only: the caller computes the duration (now minus `creationTimestamp`).

use chrono::Duration;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const YEAR: i64 = 365 * DAY;

/// Renders `d` with two or three significant figures, the way kubectl does: whole seconds below
/// two minutes, then minutes and seconds, minutes, hours and minutes, hours, days and hours, days,
/// years and days, and years. Up to one second in the future (clock skew) shows as `0s`; further
/// in the future is `<invalid>`.
pub fn short_age(d: Duration) -> String {
    // Whole seconds, truncated toward zero.
    let secs = d.num_seconds();
    if secs < -1 {
        return "<invalid>".to_owned();
    }
    if secs < 0 {
        return "0s".to_owned();
    }
    if secs < 2 * MINUTE {
        return format!("{secs}s");
    }
    let minutes = secs / MINUTE;
    if minutes < 10 {
        return with_remainder(minutes, "m", secs % MINUTE, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = secs / HOUR;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = secs / DAY;
    if hours < 8 * 24 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if secs < 2 * YEAR {
        return format!("{days}d");
    }
    let years = secs / YEAR;
    if secs < 8 * YEAR {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// `{major}{unit}` followed by `{minor}{minor_unit}` unless the minor part is zero.
fn with_remainder(major: i64, unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{unit}")
    } else {
        format!("{major}{unit}{minor}{minor_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kubectl() {
        let s = Duration::seconds;
        let ms = Duration::milliseconds;
        let table = [
            (s(-3), "<invalid>"),
            (s(-2), "<invalid>"),
            (ms(-1999), "0s"),
            (s(-1), "0s"),
            (s(0), "0s"),
            (ms(999), "0s"),
            (s(45), "45s"),
            (s(119), "119s"),
            (s(120), "2m"),
            (s(3 * 60 + 12), "3m12s"),
            (s(9 * 60 + 59), "9m59s"),
            (s(10 * 60 + 30), "10m"),
            (s(179 * 60 + 59), "179m"),
            (s(3 * HOUR), "3h"),
            (s(5 * HOUR + 2 * MINUTE + 30), "5h2m"),
            (s(7 * HOUR + 59 * MINUTE), "7h59m"),
            (s(8 * HOUR + 30 * MINUTE), "8h"),
            (s(47 * HOUR + 59 * MINUTE), "47h"),
            (s(48 * HOUR), "2d"),
            (s(3 * DAY + 4 * HOUR + 30 * MINUTE), "3d4h"),
            (s(7 * DAY + 23 * HOUR), "7d23h"),
            (s(8 * DAY + 5 * HOUR), "8d"),
            (s(89 * DAY + 12 * HOUR), "89d"),
            (s(729 * DAY), "729d"),
            (s(730 * DAY), "2y"),
            (s(2 * YEAR + 3 * DAY + 5 * HOUR), "2y3d"),
            (s(8 * YEAR - DAY), "7y364d"),
            (s(8 * YEAR + 100 * DAY), "8y"),
            (s(120 * YEAR), "120y"),
        ];
        for (d, want) in table {
            assert_eq!(short_age(d), want, "{d:?}");
        }
    }
}
