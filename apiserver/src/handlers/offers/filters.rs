//! A decline filter written into a Framework's stored bytes: the filter list
//! (`status.filters`) pruned of lapsed entries and given one for the offer's
//! agent, without decoding the rest of the Framework.
//!
//! Every accept and decline writes a filter, and a busy role's Framework
//! holds one per recently declined agent (a thousand and more), so decoding
//! and re-encoding the whole object per answer cost milliseconds. Here the
//! bytes are scanned once, each filter's `until` is read in place, kept
//! entries are copied verbatim and only the changed one is encoded.
//!
//! The output is the bytes a full decode, edit and re-encode would store for
//! a Framework in the stored shape (sorted keys, filters as
//! `{"agent":..,"until":..}` with chrono's RFC 3339 form). Whenever the bytes
//! are not of that shape (no `status` object, escapes, whitespace, a filter
//! with other fields, a time in another form, a repeated key) it gives up
//! and the caller decodes fully: whitespace is refused because the re-encode
//! would drop it, not because offsets count on its absence (they come from
//! the compact [`Scan`]). It must not read the store or allocate more than
//! the output.

use chrono::{DateTime, NaiveDate, Utc};
use meseta_schemas::kinds::OfferFilter;

use crate::object::scan::{Compact, Scan, Span};

/// `stored` with the filter for `agent` at `until` (kept when later) and the
/// filters lapsed at `now` dropped, or `None` when the bytes are not of the
/// plain stored shape.
pub(super) fn with_filter(stored: &[u8], agent: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Option<Vec<u8>> {
    let mut scan = Scan::compact(stored);
    let mut place = None;
    scan.object(|scan, member| {
        if member.key != b"status" {
            return scan.value().map(drop);
        }
        if place.is_some() {
            return None;
        }
        place = Some(status(scan)?);
        Some(())
    })?;
    if !scan.at_end() {
        return None;
    }
    let place = place?;
    let mut out = Vec::with_capacity(stored.len() + 96);
    match place {
        Place::Array(array) => {
            out.extend_from_slice(&stored[..array.start]);
            write_filters(&mut out, &stored[array.start..array.end], agent, until, now)?;
            out.extend_from_slice(&stored[array.end..]);
        }
        Place::Insert { at, comma_before, comma_after } => {
            out.extend_from_slice(&stored[..at]);
            if comma_before {
                out.push(b',');
            }
            out.extend_from_slice(b"\"filters\":");
            write_filters(&mut out, b"[]", agent, until, now)?;
            if comma_after {
                out.push(b',');
            }
            out.extend_from_slice(&stored[at..]);
        }
    }
    Some(out)
}

/// Writes the new filter array for the old array `old` (its raw bytes).
fn write_filters(out: &mut Vec<u8>, old: &[u8], agent: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Option<()> {
    let mut scan = Scan::compact(old);
    let mut first = true;
    let mut found = false;
    out.push(b'[');
    scan.array(|scan| {
        let start = scan.pos();
        let (name, at) = filter(scan)?;
        let raw = &old[start..scan.pos()];
        let at_time = parse_time(at)?;
        if at_time <= now {
            return Some(());
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if name == agent.as_bytes() {
            if found {
                // Two entries for one agent: leave it to the full decode.
                return None;
            }
            found = true;
            if until > at_time {
                encode_filter(out, agent, until)?;
                return Some(());
            }
        }
        out.extend_from_slice(raw);
        Some(())
    })?;
    if !scan.at_end() {
        return None;
    }
    if !found {
        if !first {
            out.push(b',');
        }
        encode_filter(out, agent, until)?;
    }
    out.push(b']');
    Some(())
}

fn encode_filter(out: &mut Vec<u8>, agent: &str, until: DateTime<Utc>) -> Option<()> {
    serde_json::to_writer(out, &OfferFilter { agent: agent.to_owned(), until }).ok()
}

/// A time in the form chrono writes a `DateTime<Utc>`
/// (`2024-05-01T10:00:00[.f{3,6,9}]Z`); `None` for any other form.
fn parse_time(text: &[u8]) -> Option<DateTime<Utc>> {
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    if text.len() < 20 || text[4] != b'-' || text[7] != b'-' || text[10] != b'T' || text[13] != b':' {
        return None;
    }
    if text[16] != b':' || text.last() != Some(&b'Z') {
        return None;
    }
    let nanos = match text.len() {
        20 => 0,
        24 | 27 | 30 if text[19] == b'.' => {
            let frac = digits(20..text.len() - 1)?;
            frac * 10u32.pow(30 - text.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let (h, m, s) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    // Leap seconds (60) take chrono's own parser.
    if s > 59 {
        return None;
    }
    Some(date.and_hms_nano_opt(h, m, s, nanos)?.and_utc())
}

/// Where the filter array is, or where it goes when absent.
enum Place {
    /// The span of the present array.
    Array(Span),
    /// Insert `"filters":[...]` at `at`, with a comma before it when it
    /// follows another member and after it when another member follows.
    Insert { at: usize, comma_before: bool, comma_after: bool },
}

/// The `status` object at the cursor: where its `filters` array is or would
/// go, by key order.
fn status(scan: &mut Compact<'_>) -> Option<Place> {
    let mut place = None;
    let mut last_member_end = None;
    let object = scan.object(|scan, member| {
        let value = if member.key == b"filters" {
            if place.is_some() {
                return None;
            }
            let array = scan.array(|scan| scan.value().map(drop))?;
            place = Some(Place::Array(array));
            array
        } else {
            if place.is_none() && member.key > b"filters".as_slice() {
                place = Some(Place::Insert { at: member.key_span.start, comma_before: false, comma_after: true });
            }
            scan.value()?
        };
        last_member_end = Some(value.end);
        Some(())
    })?;
    Some(match place {
        Some(p) => p,
        // Every key sorts before `filters`: append after the last member.
        None => match last_member_end {
            Some(end) => Place::Insert { at: end, comma_before: true, comma_after: false },
            None => Place::Insert { at: object.start + 1, comma_before: false, comma_after: false },
        },
    })
}

/// One filter `{"agent":"..","until":".."}`, those two keys in that order
/// and no other: the agent and the time text.
fn filter<'a>(scan: &mut Compact<'a>) -> Option<(&'a [u8], &'a [u8])> {
    const KEYS: [&[u8]; 2] = [b"agent", b"until"];
    let mut texts = [None; 2];
    let mut n = 0;
    scan.object(|scan, member| {
        if KEYS.get(n) != Some(&member.key) {
            return None;
        }
        texts[n] = Some(scan.plain_string()?);
        n += 1;
        Some(())
    })?;
    Some((texts[0]?, texts[1]?))
}

#[cfg(test)]
#[path = "filters_tests.rs"]
mod tests;
