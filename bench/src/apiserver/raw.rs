//! The write load's HTTP/1.1 connection: one keep-alive TCP connection per
//! client task, requests written from pre-serialised templates into a reused
//! buffer, answers read into another and parsed only as far as the load needs
//! (status, `Content-Length`, and for updates the new `resourceVersion`).
//!
//! The load generator shares the machine's cores with the server, so its own
//! CPU per request comes out of the server's share: this keeps it to a few
//! microseconds where a general-purpose client (reqwest) spends tens. It must
//! not be used for anything but the bench's own requests to its own server:
//! it speaks only the subset of HTTP/1.1 that the apiserver answers with
//! (no chunked bodies, no redirects, no TLS).

use anyhow::{bail, Context};
use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A JSON body with slots, cut once into literal pieces and slot numbers.
pub struct Template {
    pieces: Vec<Piece>,
}

enum Piece {
    Text(String),
    Slot(usize),
}

impl Template {
    /// Cuts `text` at each occurrence of `slots[i]` (each must occur, and
    /// needs no JSON escaping where it is used).
    pub fn new(text: &str, slots: &[&str]) -> anyhow::Result<Template> {
        let mut found: Vec<(usize, usize)> = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            let at = text.find(slot).with_context(|| format!("slot {slot} is not in the template"))?;
            found.push((at, index));
        }
        found.sort_unstable();
        let (mut pieces, mut from) = (Vec::new(), 0);
        for (at, index) in found {
            pieces.push(Piece::Text(text[from..at].to_string()));
            pieces.push(Piece::Slot(index));
            from = at + slots[index].len();
        }
        pieces.push(Piece::Text(text[from..].to_string()));
        Ok(Template { pieces })
    }

    /// Appends the template with `values[i]` in slot `i`.
    pub fn render(&self, out: &mut Vec<u8>, values: &[&[u8]]) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Slot(index) => out.extend_from_slice(values[*index]),
            }
        }
    }
}

/// One keep-alive connection to the server with its reused buffers.
pub struct Connection {
    stream: TcpStream,
    host: String,
    request: Vec<u8>,
    body: Vec<u8>,
    answer: Vec<u8>,
}

/// An answer: its status and the range of its body in the read buffer.
pub struct Answer<'a> {
    /// HTTP status code.
    pub status: u16,
    /// The body bytes.
    pub body: &'a [u8],
}

impl Connection {
    /// Connects to `base` (`http://host:port`).
    pub async fn open(base: &str) -> anyhow::Result<Connection> {
        let host = base.strip_prefix("http://").context("the server's base URL starts with http://")?;
        let host = host.trim_end_matches('/').to_string();
        let stream = TcpStream::connect(&host).await.with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, host, request: Vec::new(), body: Vec::new(), answer: Vec::with_capacity(8192) })
    }

    /// Sends `method path` with the JSON body `template` filled with
    /// `values`, and reads the answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        template: &Template,
        values: &[&[u8]],
    ) -> anyhow::Result<Answer<'_>> {
        self.body.clear();
        template.render(&mut self.body, values);
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.host,
            self.body.len()
        )?;
        self.request.extend_from_slice(&self.body);
        self.stream.write_all(&self.request).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> anyhow::Result<Answer<'_>> {
        self.answer.clear();
        let (status, head_len, body_len) = loop {
            self.answer.reserve(8192);
            if self.stream.read_buf(&mut self.answer).await? == 0 {
                bail!("the server closed the connection before answering");
            }
            if let Some(end) = find(&self.answer, b"\r\n\r\n") {
                let (status, body_len) = parse_head(&self.answer[..end])?;
                break (status, end + 4, body_len);
            }
        };
        while self.answer.len() < head_len + body_len {
            self.answer.reserve(head_len + body_len - self.answer.len());
            if self.stream.read_buf(&mut self.answer).await? == 0 {
                bail!("the server closed the connection in the middle of an answer");
            }
        }
        if self.answer.len() != head_len + body_len {
            bail!("the server sent more than one answer to one request");
        }
        Ok(Answer { status, body: &self.answer[head_len..] })
    }
}

/// The status and `Content-Length` of an answer's head (without its blank
/// line). Anything the write load does not expect is an error.
fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let head = std::str::from_utf8(head).context("the answer's head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("unexpected status line {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { bail!("malformed header line {line:?}") };
        if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("answer {status} with Transfer-Encoding {value:?}: only Content-Length bodies are expected");
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse().with_context(|| format!("Content-Length {value:?}"))?);
        }
    }
    Ok((status, length.with_context(|| format!("answer {status} without Content-Length"))?))
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The new `metadata.resourceVersion` of a written object's JSON: the first
/// `"resourceVersion"` member, which is metadata's (the apiserver writes it
/// first in `metadata`, and no other part of a Task carries that key). A
/// wrong value would make the next update fail with 409, which ends the run.
pub fn resource_version(body: &[u8]) -> anyhow::Result<String> {
    const KEY: &[u8] = b"\"resourceVersion\":\"";
    let start = find(body, KEY).context("no resourceVersion in the written object")? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"').context("unterminated resourceVersion")?;
    Ok(std::str::from_utf8(&body[start..start + len])?.to_string())
}
