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
//! and the caller decodes fully. It must not read the store or allocate more
//! than the output.

use chrono::{DateTime, NaiveDate, Utc};
use meseta_schemas::kinds::OfferFilter;

/// `stored` with the filter for `agent` at `until` (kept when later) and the
/// filters lapsed at `now` dropped, or `None` when the bytes are not of the
/// plain stored shape.
pub(super) fn with_filter(stored: &[u8], agent: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Option<Vec<u8>> {
    let mut scan = Scan { b: stored, i: 0 };
    let mut place = None;
    scan.object(|scan, key| {
        if key != b"status" {
            return scan.value();
        }
        if place.is_some() {
            return None;
        }
        place = Some(scan.status()?);
        Some(())
    })?;
    if scan.i != stored.len() {
        return None;
    }
    let place = place?;
    let mut out = Vec::with_capacity(stored.len() + 96);
    match place {
        Place::Array { start, end } => {
            out.extend_from_slice(&stored[..start]);
            write_filters(&mut out, &stored[start..end], agent, until, now)?;
            out.extend_from_slice(&stored[end..]);
        }
        Place::Insert { at, comma_before } => {
            out.extend_from_slice(&stored[..at]);
            if comma_before {
                out.push(b',');
            }
            out.extend_from_slice(b"\"filters\":");
            write_filters(&mut out, b"[]", agent, until, now)?;
            if !comma_before && stored[at] != b'}' {
                out.push(b',');
            }
            out.extend_from_slice(&stored[at..]);
        }
    }
    Some(out)
}

/// Writes the new filter array for the old array `old` (its raw bytes).
fn write_filters(out: &mut Vec<u8>, old: &[u8], agent: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Option<()> {
    let mut scan = Scan { b: old, i: 0 };
    let mut first = true;
    let mut found = false;
    out.push(b'[');
    scan.array(|scan| {
        let start = scan.i;
        let (name, at) = scan.filter()?;
        let raw = &scan.b[start..scan.i];
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
    if scan.i != old.len() {
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
    /// The raw bytes `start..end` of the present array.
    Array { start: usize, end: usize },
    /// Insert `"filters":[...]` at `at` (before a later key or the closing
    /// brace), with a comma before it when it follows another member.
    Insert { at: usize, comma_before: bool },
}

/// A scanner over compact JSON (no whitespace, as serde_json writes it).
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes: its contents.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..].iter().position(|&c| c == b'"' || c == b'\\')?;
        self.i = start + len;
        self.eat(b'"')?;
        Some(&self.b[start..start + len])
    }

    /// Skips any string, escapes included.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let len = self.b[self.i..].iter().position(|&c| c == b'"' || c == b'\\')?;
            self.i += len;
            if self.peek()? == b'"' {
                self.i += 1;
                return Some(());
            }
            self.i += 2;
        }
    }

    /// Calls `member` for each key (no escapes), positioned at its value,
    /// which `member` must consume.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips one value.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|scan, _| scan.value()),
            b'[' => self.array(Scan::value),
            _ => {
                let len = self.b[self.i..].iter().position(|&c| matches!(c, b',' | b'}' | b']'))?;
                let atom = &self.b[self.i..self.i + len];
                let ok = matches!(atom, b"true" | b"false" | b"null")
                    || (!atom.is_empty()
                        && atom.iter().all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')));
                self.i += len;
                ok.then_some(())
            }
        }
    }

    /// The `status` object: where its `filters` array is or would go.
    fn status(&mut self) -> Option<Place> {
        let mut place = None;
        let mut last_member_end = None;
        let open = self.i;
        self.object(|scan, key| {
            let key_start = scan.i - key.len() - 3;
            if key == b"filters" {
                if place.is_some() {
                    return None;
                }
                let start = scan.i;
                scan.array(|s| s.value())?;
                place = Some(Place::Array { start, end: scan.i });
            } else {
                if place.is_none() && key > b"filters".as_slice() {
                    place = Some(Place::Insert { at: key_start, comma_before: false });
                }
                scan.value()?;
            }
            last_member_end = Some(scan.i);
            Some(())
        })?;
        Some(match place {
            Some(p) => p,
            // Every key sorts before `filters`: append before the `}`.
            None => match last_member_end {
                Some(end) => Place::Insert { at: end, comma_before: true },
                None => Place::Insert { at: open + 1, comma_before: false },
            },
        })
    }

    /// One filter `{"agent":"..","until":".."}`: the agent and the time text.
    fn filter(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        self.eat(b'{')?;
        (self.string()? == b"agent").then_some(())?;
        self.eat(b':')?;
        let agent = self.string()?;
        self.eat(b',')?;
        (self.string()? == b"until").then_some(())?;
        self.eat(b':')?;
        let until = self.string()?;
        self.eat(b'}')?;
        Some((agent, until))
    }
}

#[cfg(test)]
#[path = "filters_tests.rs"]
mod tests;
