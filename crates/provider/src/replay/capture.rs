//! HTTP response captures (`curl -i`, raw HTTP/1.x) read as people make them.

use std::collections::BTreeMap;

/// A parsed HTTP/1.x response capture.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCapture {
    pub status: u16,
    /// Lower-cased names; framing headers (`content-length`, `transfer-encoding`) removed.
    pub headers: BTreeMap<String, String>,
    /// The body, de-chunked when the capture was chunked.
    pub body: Vec<u8>,
    /// The capture ends in the middle of its body: a chunk cut short or no last chunk, fewer
    /// bytes than `content-length`, or an event stream whose last event is cut.
    pub cut_short: bool,
    /// How the capture was read where that differs from what its headers say, for people.
    pub notes: Vec<String>,
}

/// Parse `bytes` as an HTTP/1.x (or `curl -i` HTTP/2) response capture. `Ok(None)` when it
/// does not start with a status line (a bare body); `Err` when it does but is broken.
///
/// Read as people make captures: informational heads (`100 Continue`) before the real one are
/// skipped; a body under `transfer-encoding: chunked` that is not chunked (curl prints bodies
/// already de-chunked) is taken as it is, with a note; a capture cut mid-body is marked
/// `cut_short`.
pub fn parse_http_capture(bytes: &[u8]) -> Result<Option<HttpCapture>, String> {
    if !bytes.starts_with(b"HTTP/") {
        return Ok(None);
    }
    let mut bytes = bytes;
    loop {
        let head_end = memchr::memmem::find(bytes, b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| memchr::memmem::find(bytes, b"\n\n").map(|i| (i, i + 2)))
            .ok_or("no blank line after the headers")?;
        let head =
            std::str::from_utf8(&bytes[..head_end.0]).map_err(|_| "headers are not UTF-8")?;
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| format!("bad status line `{status_line}`"))?;
        let rest = &bytes[head_end.1..];
        if (100..200).contains(&status) && rest.starts_with(b"HTTP/") {
            bytes = rest;
            continue;
        }
        let mut headers = BTreeMap::new();
        let mut chunked = false;
        let mut length = None;
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line `{line}`"))?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            match name.as_str() {
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "content-length" => length = value.parse::<usize>().ok(),
                "connection" => {}
                _ => {
                    headers.insert(name, value);
                }
            }
        }
        return Ok(Some(capture_body(status, headers, rest, chunked, length)?));
    }
}

fn capture_body(
    status: u16,
    headers: BTreeMap<String, String>,
    raw: &[u8],
    chunked: bool,
    length: Option<usize>,
) -> Result<HttpCapture, String> {
    let mut notes = Vec::new();
    let mut cut_short = false;
    let body = if chunked && starts_like_chunk(raw) {
        let (body, complete) = dechunk(raw)?;
        if !complete {
            cut_short = true;
            notes.push(format!(
                "the chunked body ends before its last chunk; replayed as {} bytes and then a \
                 broken connection",
                body.len()
            ));
        }
        body
    } else {
        if chunked {
            notes.push(
                "the capture says `transfer-encoding: chunked` but its body is not chunked (curl \
                 -i prints bodies already de-chunked); read as it is"
                    .to_string(),
            );
        }
        raw.to_vec()
    };
    if !cut_short
        && let Some(n) = length
        && body.len() < n
    {
        cut_short = true;
        notes.push(format!(
            "the body has {} of the {n} bytes its content-length says; replayed as a broken \
             connection after them",
            body.len()
        ));
    }
    let is_stream = headers
        .get("content-type")
        .is_some_and(|ct| ct.contains("text/event-stream"));
    if !cut_short && is_stream && !body.is_empty() && !ends_at_event_boundary(&body) {
        cut_short = true;
        notes.push(format!(
            "the event stream stops in the middle of an event (the capture was cut); replayed \
             as {} bytes and then a broken connection",
            body.len()
        ));
    }
    Ok(HttpCapture {
        status,
        headers,
        body,
        cut_short,
        notes,
    })
}

/// Whether `raw` starts with a chunk-size line (hex digits, optional extensions, CRLF).
fn starts_like_chunk(raw: &[u8]) -> bool {
    let Some(eol) = memchr::memmem::find(raw, b"\r\n") else {
        return false;
    };
    let size = raw[..eol].split(|b| *b == b';').next().unwrap_or_default();
    let size = size.trim_ascii();
    !size.is_empty() && size.len() <= 16 && size.iter().all(u8::is_ascii_hexdigit)
}

fn ends_at_event_boundary(body: &[u8]) -> bool {
    body.ends_with(b"\n\n") || body.ends_with(b"\r\n\r\n") || body.ends_with(b"\r\r")
}

/// De-chunk `raw`: the body, and whether it ended with the last (zero-size) chunk.
fn dechunk(mut raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = memchr::memmem::find(raw, b"\r\n") else {
            return Ok((out, false));
        };
        let size_text = std::str::from_utf8(&raw[..eol]).map_err(|_| "chunked body: bad size")?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("chunked body: bad chunk size `{size_hex}`"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok((out, true));
        }
        if raw.len() < size {
            out.extend_from_slice(raw);
            return Ok((out, false));
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw[size..].strip_prefix(b"\r\n").unwrap_or(&raw[size..]);
    }
}
