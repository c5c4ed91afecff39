//! Aligned text tables, kubectl style: upper-case headers, columns
//! separated by three spaces, the last column unpadded; cells may carry a
//! colour, applied only when asked (stdout is a terminal and `NO_COLOR` is
//! unset). Pure formatting, no I/O.

use std::io::IsTerminal;

/// Colour of a cell, by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// No colour.
    Plain,
    /// Healthy / done well (green).
    Good,
    /// In progress / attention (yellow).
    Busy,
    /// Failed / lost (red).
    Bad,
    /// Ended on purpose, or not applicable (dim).
    Quiet,
}

impl Tone {
    fn code(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("32"),
            Tone::Busy => Some("33"),
            Tone::Bad => Some("31"),
            Tone::Quiet => Some("2"),
        }
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cell {
    /// The text.
    pub(crate) text: String,
    /// Its colour.
    pub(crate) tone: Tone,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, tone: Tone::Plain }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell { text: text.to_string(), tone: Tone::Plain }
    }
}

/// Whether to colour output written to stdout.
pub(crate) fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A table: headers and rows of cells.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// Column headers.
    pub(crate) headers: Vec<String>,
    /// Rows, each as long as `headers`.
    pub(crate) rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Column widths: the longest header or cell of each column.
    pub(crate) fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
        widths
    }

    /// The header line and every row, aligned.
    pub(crate) fn render(&self, colour: bool) -> String {
        let widths = self.widths();
        let mut out = String::new();
        let headers: Vec<Cell> = self.headers.iter().map(|h| Cell::from(h.as_str())).collect();
        out.push_str(&render_row(&headers, &widths, false));
        for row in &self.rows {
            out.push_str(&render_row(row, &widths, colour));
        }
        out
    }
}

/// One line: cells padded to `widths` (a cell longer than its width
/// pushes the rest right), three spaces between columns, newline at the end.
pub(crate) fn render_row(row: &[Cell], widths: &[usize], colour: bool) -> String {
    let mut line = String::new();
    let last = row.len().saturating_sub(1);
    for (i, cell) in row.iter().enumerate() {
        let text = match (colour, cell.tone.code()) {
            (true, Some(code)) => format!("\x1b[{code}m{}\x1b[0m", cell.text),
            _ => cell.text.clone(),
        };
        line.push_str(&text);
        if i < last {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.text.chars().count()) + 3;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            headers: vec!["NAME".into(), "STATE".into(), "AGE".into()],
            rows: vec![
                vec!["a".into(), Cell { text: "RUNNING".into(), tone: Tone::Good }, "5s".into()],
                vec!["longer-name".into(), "PENDING".into(), "3m12s".into()],
            ],
        }
    }

    #[test]
    fn columns_align_with_three_spaces() {
        assert_eq!(
            table().render(false),
            "NAME          STATE     AGE\na             RUNNING   5s\nlonger-name   PENDING   3m12s\n"
        );
    }

    #[test]
    fn colour_wraps_the_text_but_not_the_padding() {
        let out = table().render(true);
        assert!(out.contains("\x1b[32mRUNNING\x1b[0m   5s"), "{out:?}");
        assert!(!out.lines().next().unwrap().contains('\x1b'));
    }
}
