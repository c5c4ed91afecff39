//! The scanner for reading and editing stored JSON bytes in place, without
//! decoding them: it walks objects and arrays and reports where each key and
//! value starts and ends, so that callers cut and insert at those offsets
//! instead of counting bytes themselves.
//!
//! Owns the token rules the in-place readers share. The [`Lenient`] scan
//! takes whitespace between tokens and skips a nested value by bracket depth
//! without checking its inside, for reads of bytes the store wrote. The
//! [`Compact`] scan takes only the compact form serde_json writes and checks
//! every value it skips (keys, nesting, `true`/`false`/`null` and number
//! characters), for edits whose output must equal a full re-encode. Both
//! refuse keys with escapes and give up (`None`) on anything else. It must
//! not allocate, decode values or do I/O; what a caller accepts beyond that
//! (which keys, which order) is the caller's.

/// The bytes `start..end` of a token: a key with its quotes, or a whole
/// value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// One object member as the scan reaches it, standing at its value: the
/// key's text (between its quotes) and span. The value's span is what
/// [`Scan::value`], [`Scan::object`] or [`Scan::array`] returns for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) key_span: Span,
}

/// A forward-only scanner over `b`, standing at byte `i`; `COMPACT` picks
/// the mode, fixed at compile time so that the compact scan pays nothing
/// for the whitespace it never skips.
#[derive(Clone, Debug)]
pub(crate) struct Scan<'a, const COMPACT: bool> {
    b: &'a [u8],
    i: usize,
}

/// The scan that takes whitespace and skips nested values by depth.
pub(crate) type Lenient<'a> = Scan<'a, false>;
/// The scan that takes only compact JSON and checks what it skips.
pub(crate) type Compact<'a> = Scan<'a, true>;

impl<'a> Lenient<'a> {
    /// Whitespace allowed; nested values skipped by depth.
    pub(crate) fn lenient(b: &'a [u8]) -> Self {
        Scan { b, i: 0 }
    }
}

impl<'a> Compact<'a> {
    /// No whitespace; every skipped value checked.
    pub(crate) fn compact(b: &'a [u8]) -> Self {
        Scan { b, i: 0 }
    }
}

impl<'a, const COMPACT: bool> Scan<'a, COMPACT> {
    /// The offset the scan stands at.
    pub(crate) fn pos(&self) -> usize {
        self.i
    }

    /// Whether only whitespace (none, when compact) is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        if COMPACT {
            return;
        }
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// A string starting at `"`: its raw content and whether it held an
    /// escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            j += self.b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
            if self.b[j] == b'"' {
                break;
            }
            escaped = true;
            j += 2;
        }
        self.i = j + 1;
        Some((&self.b[start..j], escaped))
    }

    /// A string without escapes at the cursor: its content.
    pub(crate) fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.ws();
        match self.string()? {
            (text, false) => Some(text),
            (_, true) => None,
        }
    }

    /// Walks the object at the cursor, calling `each` for every member with
    /// the scan at the member's value, which `each` must consume; `each`
    /// stops the walk by returning `None`. The object's span.
    pub(crate) fn object(&mut self, mut each: impl FnMut(&mut Self, Member<'a>) -> Option<()>) -> Option<Span> {
        self.items(b'{', b'}', |scan| {
            let key_start = scan.i;
            let (key, escaped) = scan.string()?;
            if escaped {
                return None;
            }
            let key_span = Span { start: key_start, end: scan.i };
            scan.ws();
            if scan.peek()? != b':' {
                return None;
            }
            scan.i += 1;
            scan.ws();
            each(scan, Member { key, key_span })
        })
    }

    /// Walks the array at the cursor, calling `each` with the scan at every
    /// element, which `each` must consume. The array's span.
    pub(crate) fn array(&mut self, each: impl FnMut(&mut Self) -> Option<()>) -> Option<Span> {
        self.items(b'[', b']', each)
    }

    /// The comma-separated items between `open` and `close`, each read by
    /// `each` from its first byte.
    fn items(&mut self, open: u8, close: u8, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<Span> {
        self.ws();
        let start = self.i;
        if self.peek()? != open {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? != close {
            loop {
                self.ws();
                each(self)?;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => break,
                    _ => return None,
                }
            }
        }
        self.i += 1;
        Some(Span { start, end: self.i })
    }

    /// Skips one value of any type: its span.
    pub(crate) fn value(&mut self) -> Option<Span> {
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' if COMPACT => {
                self.object(|scan, _| scan.value().map(drop))?;
            }
            b'[' if COMPACT => {
                self.array(|scan| scan.value().map(drop))?;
            }
            b'{' | b'[' => self.skip_nested()?,
            _ => {
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')) {
                    self.i += 1;
                }
                let atom = &self.b[start..self.i];
                let ok = !atom.is_empty()
                    && (!COMPACT
                        || matches!(atom, b"true" | b"false" | b"null")
                        || atom.iter().all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')));
                if !ok {
                    return None;
                }
            }
        }
        Some(Span { start, end: self.i })
    }

    /// Skips an object or array by counting brackets (of either kind),
    /// stepping over strings.
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            self.i += self.b.get(self.i..)?.iter().position(|c| matches!(c, b'"' | b'{' | b'[' | b'}' | b']'))?;
            match self.b[self.i] {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Some(());
                    }
                }
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
pub(crate) mod tests;
