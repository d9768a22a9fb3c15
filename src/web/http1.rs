//! HTTP/1.1 framing (RFC 9112) over one connection: request heads, request bodies, answers.
//!
//! Only what remote-write senders and scrapers use, and strict wherever leniency would let a
//! client stall the server or smuggle a second request: a bounded head, no obsolete line
//! folding, no request carrying both `Content-Length` and `Transfer-Encoding`, only the
//! `chunked` transfer coding. Every read has a deadline; a request's head and body must arrive
//! within one read timeout of its first byte, however slowly the client trickles them.
//!
//! Request heads and chunk-size lines, the bytes most exposed to attackers, are parsed by the
//! `httparse` crate (hyper's parser); the deadlines, caps and smuggling checks are ours.

use crate::base::utc;
use crate::web::socket::Stream;
use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant, SystemTime};

/// Largest request head (request line and headers): Go's servers allow 1 MiB, but nothing a
/// remote-write sender or scraper sends comes near a kilobyte.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// Largest chunk-size line, extensions and CRLF included.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Bytes read from the socket at once when the connection buffer is empty.
const READ_CHUNK_BYTES: usize = 16 << 10;

/// A byte stream over a socket (TCP or Unix): the plain socket, or TLS over it.
pub trait Transport: Read + Write {
    fn socket(&self) -> &Stream;
}

impl Transport for Stream {
    fn socket(&self) -> &Stream {
        self
    }
}

/// How long, and for how many bytes, a connection closed after its answer is drained.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: u64 = 256 << 10;

/// Ends a connection after its last answer. Closing with request bytes unread would reset it,
/// and the client could lose the answer (a 413 or 503 given before the body was read): so
/// end our side first, then read and drop what the client still sends, until it closes, for
/// at most a second and 256 KiB.
pub fn close_after_answer(socket: &Stream) {
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let _ = socket.set_read_timeout(Some(LINGER));
    let _ = io::copy(&mut socket.take(LINGER_BYTES), &mut io::sink());
}

/// Either transport behind one type, so that a connection's code is compiled once, not once
/// per transport: the static binary has a size budget, and a virtual call per read or write
/// costs nothing beside the system call.
pub type AnyTransport = Box<dyn Transport>;

impl Transport for AnyTransport {
    fn socket(&self) -> &Stream {
        (**self).socket()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request line and header section.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    /// The request target in origin form (`/path?query`).
    pub target: String,
    pub version: Version,
    pub headers: Vec<(String, String)>,
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Why no (complete) request could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The client closed the connection, or it broke, before a request began.
    Closed,
    /// The deadline passed; `midway` says whether part of a request had arrived.
    TimedOut { midway: bool },
    /// The request breaks the protocol or a limit: answer `status` with `reason`, then close.
    Bad { status: u16, reason: String },
    /// The body grew past the limit given for it.
    TooLarge,
}

/// `%XX` escapes and `+` decoded; a `%` not followed by two hex digits is kept as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad(status: u16, reason: impl Into<String>) -> ReadError {
    ReadError::Bad {
        status,
        reason: reason.into(),
    }
}

impl Head {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
    }

    /// The values of a query parameter, in order, percent-decoded (`+` is a space, as in
    /// forms); a value that does not decode to UTF-8 is kept with replacement characters.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decoded(name) == key).then(|| percent_decoded(value))
            })
            .collect()
    }

    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Whether the client wants the connection kept open after the answer: HTTP/1.1 unless it
    /// says `close`, HTTP/1.0 only if it says `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.header_values("Connection")
                .any(|v| v.eq_ignore_ascii_case(token))
        };
        match self.version {
            Version::Http11 => !has("close"),
            Version::Http10 => has("keep-alive"),
        }
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11
            && self
                .header("Expect")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    }

    /// How the body is delimited, refusing the ambiguous cases request smuggling relies on.
    pub fn framing(&self) -> Result<Framing, ReadError> {
        let codings: Vec<&str> = self.header_values("Transfer-Encoding").collect();
        let lengths: Vec<&str> = self.header_values("Content-Length").collect();
        if !codings.is_empty() {
            if !lengths.is_empty() {
                return Err(bad(
                    400,
                    "both Content-Length and Transfer-Encoding given; send one",
                ));
            }
            return match codings.as_slice() {
                [coding] if coding.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
                _ => Err(bad(
                    501,
                    format!(
                        "unsupported Transfer-Encoding {:?}; only chunked is accepted",
                        codings.join(", ")
                    ),
                )),
            };
        }
        let Some(first) = lengths.first() else {
            return Ok(Framing::None);
        };
        let valid = |v: &&str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        if !lengths.iter().all(|v| valid(v) && v == first) {
            return Err(bad(400, format!("invalid Content-Length {first:?}")));
        }
        // `Content-Length: 0`, which some clients send with every GET, is no body at all: it
        // must not close a kept-alive connection the way an unread body does.
        match first.parse() {
            Ok(0) => Ok(Framing::None),
            Ok(length) => Ok(Framing::Length(length)),
            Err(_) => Err(bad(400, format!("Content-Length {first} is out of range"))),
        }
    }
}

/// One connection: the stream, and what was read from it but not yet used (the start of a
/// pipelined request, for example).
pub struct Connection<S> {
    stream: S,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl<S: Transport> Connection<S> {
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream,
            buffer: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Reads what the socket has into the buffer (at least one byte) before `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), ReadError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buffer.len() && self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.buffer.len() {
            let grown = (self.buffer.len() * 2).clamp(READ_CHUNK_BYTES, MAX_HEAD_BYTES * 2);
            self.buffer
                .resize(grown.max(self.end + READ_CHUNK_BYTES), 0);
        }
        let midway = self.start != self.end;
        let read = read_by(&mut self.stream, deadline, &mut self.buffer[self.end..])
            .map_err(|e| e.midway(midway))?;
        self.end += read;
        Ok(())
    }

    /// Reads the next request head. Until its first byte arrives the wait lasts until
    /// `idle_deadline`; from then on the whole head must arrive within `read_timeout`.
    /// Returns the head and when its first byte was seen, from which the body's time counts.
    pub fn read_head(
        &mut self,
        idle_deadline: Instant,
        read_timeout: Duration,
    ) -> Result<(Head, Instant), ReadError> {
        let mut started = None;
        loop {
            // A client may send empty lines between requests (RFC 9112, section 2.2).
            while let [b'\r' | b'\n', ..] = self.buffered() {
                self.start += 1;
            }
            if self.start != self.end {
                let started = *started.get_or_insert_with(Instant::now);
                if let Some((head, length)) = parse_head(self.buffered())? {
                    self.start += length;
                    return Ok((head, started));
                }
                if self.end - self.start >= MAX_HEAD_BYTES {
                    return Err(bad(
                        431,
                        format!("request head over {MAX_HEAD_BYTES} bytes"),
                    ));
                }
            }
            let deadline = started.map_or(idle_deadline, |s| s + read_timeout);
            self.fill(deadline)?;
        }
    }

    /// Reads a body delimited by `framing` into `out` (cleared first), refusing one over
    /// `limit` bytes: a declared length before reading, a chunked body as it passes the limit.
    pub fn read_body(
        &mut self,
        framing: Framing,
        limit: usize,
        deadline: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        out.clear();
        match framing {
            Framing::None => Ok(()),
            Framing::Length(length) => {
                let length = usize::try_from(length).map_err(|_| ReadError::TooLarge)?;
                if length > limit {
                    return Err(ReadError::TooLarge);
                }
                self.copy_exactly(length, deadline, out)
            }
            Framing::Chunked => self.read_chunks(limit, deadline, out),
        }
    }

    fn read_chunks(
        &mut self,
        limit: usize,
        deadline: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        loop {
            let size = self.read_chunk_size(deadline)?;
            if size == 0 {
                // Trailer fields are read and ignored, up to the empty line.
                let mut trailer_bytes = 0;
                loop {
                    let trailer = self.read_line(MAX_HEAD_BYTES, deadline)?;
                    if trailer.is_empty() {
                        return Ok(());
                    }
                    trailer_bytes += trailer.len();
                    if trailer_bytes > MAX_HEAD_BYTES {
                        return Err(bad(431, "chunked trailer too large"));
                    }
                }
            }
            let size = usize::try_from(size).map_err(|_| ReadError::TooLarge)?;
            if size > limit.saturating_sub(out.len()) {
                return Err(ReadError::TooLarge);
            }
            self.copy_exactly(size, deadline, out)?;
            if !self.read_line(0, deadline)?.is_empty() {
                return Err(bad(400, "chunk data longer than its size"));
            }
        }
    }

    /// Reads a chunk-size line (RFC 9112, section 7.1) with httparse, extensions ignored: the
    /// size, which must have at least one hex digit (httparse reads an empty one as 0, which
    /// would end the body early).
    fn read_chunk_size(&mut self, deadline: Instant) -> Result<u64, ReadError> {
        loop {
            let line = self.buffered();
            let invalid = || {
                let shown = &line[..line.len().min(40)];
                bad(
                    400,
                    format!(
                        "invalid chunk size line {:?}",
                        String::from_utf8_lossy(shown)
                    ),
                )
            };
            if line.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let too_long = || bad(400, "chunked framing line too long");
            match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((length, _))) if length > MAX_CHUNK_LINE_BYTES => {
                    return Err(too_long())
                }
                Ok(httparse::Status::Complete((length, size))) => {
                    self.start += length;
                    return Ok(size);
                }
                Ok(httparse::Status::Partial) if line.len() < MAX_CHUNK_LINE_BYTES => {}
                Ok(httparse::Status::Partial) => return Err(too_long()),
                Err(httparse::InvalidChunkSize) => return Err(invalid()),
            }
            self.fill(deadline).map_err(ReadError::midway_always)?;
        }
    }

    /// Reads one line of at most `max` bytes, without its CRLF (or bare LF).
    fn read_line(&mut self, max: usize, deadline: Instant) -> Result<String, ReadError> {
        loop {
            if let Some(newline) = self.buffered().iter().position(|b| *b == b'\n') {
                let line = &self.buffered()[..newline];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > max {
                    return Err(bad(400, "chunked framing line too long"));
                }
                let line = String::from_utf8(line.to_vec())
                    .map_err(|_| bad(400, "chunked framing line is not text"))?;
                self.start += newline + 1;
                return Ok(line);
            }
            if self.end - self.start > max + 1 {
                return Err(bad(400, "chunked framing line too long"));
            }
            self.fill(deadline).map_err(ReadError::midway_always)?;
        }
    }

    /// Appends exactly `length` body bytes to `out`: the buffered ones, then straight from the
    /// socket. The output grows as bytes arrive, not by the announced length at once.
    fn copy_exactly(
        &mut self,
        length: usize,
        deadline: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        let target = out.len() + length;
        let from_buffer = length.min(self.end - self.start);
        out.extend_from_slice(&self.buffer[self.start..self.start + from_buffer]);
        self.start += from_buffer;
        while out.len() < target {
            let filled = out.len();
            let step = (target - filled).min(filled.max(READ_CHUNK_BYTES * 4));
            out.resize(filled + step, 0);
            let read = read_by(&mut self.stream, deadline, &mut out[filled..]);
            out.truncate(filled + read.as_ref().map_or(0, |n| *n));
            read.map_err(ReadError::midway_always)?;
        }
        Ok(())
    }

    /// Writes all of `bytes` before `deadline`.
    pub fn write_by(&mut self, deadline: Instant, bytes: &[u8]) -> io::Result<()> {
        self.write_parts_by(deadline, &mut [IoSlice::new(bytes)])
    }

    /// Writes all of `parts`, one after the other, before `deadline`: together, in as few
    /// system calls as the socket allows. Each call may block only for the time left.
    pub fn write_parts_by(
        &mut self,
        deadline: Instant,
        mut parts: &mut [IoSlice],
    ) -> io::Result<()> {
        // Advancing by nothing drops empty parts in front, so that nothing to write is no write.
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            let left = time_left(deadline)?;
            self.stream.socket().set_write_timeout(Some(left))?;
            match self.stream.write_vectored(parts) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut parts, written),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.stream.flush()
    }
}

/// Bytes a streamed body gathers before it writes them, as one chunk: a page writer's whole
/// write, so that it goes out as it is.
pub const STREAM_CHUNK_BYTES: usize = crate::expose::page::PAGE_WRITE_BYTES;

/// A response body written as it is made, before `deadline`: in chunks for HTTP/1.1, raw up
/// to the close for HTTP/1.0 (whose head must then say `Connection: close`). Small writes are
/// gathered into pieces of up to 64 KiB, each one write to the socket; a write of 32 KiB or
/// more that finds nothing gathered, as a page writer's flush does, goes out as its own piece
/// straight from the caller's buffer, so that the bytes of a page are copied once, into the
/// socket.
pub struct StreamedBody<'c, S> {
    connection: &'c mut Connection<S>,
    deadline: Instant,
    chunked: bool,
    pending: Vec<u8>,
}

impl<'c, S: Transport> StreamedBody<'c, S> {
    pub fn new(
        connection: &'c mut Connection<S>,
        version: Version,
        deadline: Instant,
    ) -> StreamedBody<'c, S> {
        StreamedBody {
            connection,
            deadline,
            chunked: version == Version::Http11,
            pending: Vec::new(),
        }
    }

    /// Writes what is gathered, and ends a chunked body with its last, empty chunk.
    pub fn finish(mut self) -> io::Result<()> {
        self.emit()?;
        if self.chunked {
            self.connection.write_by(self.deadline, b"0\r\n\r\n")?;
        }
        Ok(())
    }

    fn emit(&mut self) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let written = self.write_piece(&pending);
        pending.clear();
        self.pending = pending;
        written
    }

    /// Writes `bytes` as one piece: a chunk, with its size line and CRLF, when chunked.
    fn write_piece(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.chunked {
            return self.connection.write_by(self.deadline, bytes);
        }
        let mut size_line = [0u8; 18];
        let mut start = 16;
        size_line[16..].copy_from_slice(b"\r\n");
        let mut size = bytes.len();
        loop {
            start -= 1;
            size_line[start] = b"0123456789abcdef"[size % 16];
            size /= 16;
            if size == 0 {
                break;
            }
        }
        let mut parts = [
            IoSlice::new(&size_line[start..]),
            IoSlice::new(bytes),
            IoSlice::new(b"\r\n"),
        ];
        self.connection.write_parts_by(self.deadline, &mut parts)
    }
}

impl<S: Transport> Write for StreamedBody<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        if self.pending.len() + bytes.len() > STREAM_CHUNK_BYTES {
            self.emit()?;
        }
        if self.pending.is_empty() && bytes.len() >= STREAM_CHUNK_BYTES / 2 {
            self.write_piece(bytes)?;
        } else {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(STREAM_CHUNK_BYTES);
            }
            self.pending.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ReadError {
    fn midway(self, midway: bool) -> ReadError {
        match self {
            ReadError::TimedOut { .. } => ReadError::TimedOut { midway },
            ReadError::Closed if midway => bad(400, "connection closed in the middle of a request"),
            other => other,
        }
    }

    /// For reads inside a request, where any cut is in the middle of it.
    fn midway_always(self) -> ReadError {
        self.midway(true)
    }
}

fn time_left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
}

/// One read of at least a byte before `deadline`.
fn read_by<S: Transport>(
    stream: &mut S,
    deadline: Instant,
    into: &mut [u8],
) -> Result<usize, ReadError> {
    loop {
        let left = time_left(deadline).map_err(|_| ReadError::TimedOut { midway: false })?;
        stream
            .socket()
            .set_read_timeout(Some(left))
            .map_err(|_| ReadError::Closed)?;
        match stream.read(into) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(read) => return Ok(read),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::TimedOut { midway: false })
            }
            Err(_) => return Err(ReadError::Closed),
        }
    }
}

/// Header fields a request may carry; Prometheus sends under a dozen.
const MAX_HEADERS: usize = 100;

/// Parses the request head at the start of `bytes` with httparse, the parser hyper uses:
/// `None` until it is complete, then the head and its length. Our own checks stay on top:
/// only HTTP/1.0 and 1.1 (505 for other versions), a target in origin or absolute form,
/// header values in UTF-8. httparse refuses obsolete line folding in requests.
fn parse_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, ReadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(head_error(bytes, error)),
    };
    let version = match request.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let (method, target) = (
        request.method.unwrap_or_default(),
        request.path.unwrap_or_default(),
    );
    let target = origin_form(target)
        .ok_or_else(|| bad(400, format!("invalid request target {target:?}")))?;
    let mut headers = Vec::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let value = std::str::from_utf8(field.value)
            .map_err(|_| bad(400, format!("header {:?} is not UTF-8", field.name)))?;
        headers.push((
            field.name.to_owned(),
            value.trim_matches([' ', '\t']).to_owned(),
        ));
    }
    let head = Head {
        method: method.to_owned(),
        target,
        version,
        headers,
    };
    Ok(Some((head, length)))
}

/// The answer to a head httparse refused: 505 for a well-formed version we do not speak, 431
/// for too many header fields, 400 with httparse's reason otherwise.
fn head_error(bytes: &[u8], error: httparse::Error) -> ReadError {
    let request_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(&request_line[..request_line.len().min(100)]);
    let request_line = request_line.trim_end();
    match error {
        httparse::Error::Version
            if request_line
                .rsplit(' ')
                .next()
                .is_some_and(|version| version.starts_with("HTTP/")) =>
        {
            bad(
                505,
                format!("unsupported version in {request_line:?}; use HTTP/1.1"),
            )
        }
        httparse::Error::TooManyHeaders => {
            bad(431, format!("more than {MAX_HEADERS} header fields"))
        }
        other => bad(
            400,
            format!("malformed request head ({other}): {request_line:?}"),
        ),
    }
}

/// `/path?query` as sent, or the path part of an absolute-form target (`http://host/path`).
fn origin_form(target: &str) -> Option<String> {
    if target.starts_with('/') {
        return Some(target.to_owned());
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    Some(match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => rest[at..].to_owned(),
        Some(at) => format!("/{}", &rest[at..]),
        None => "/".to_owned(),
    })
}

/// An answer's status line and headers; the body follows separately.
pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub headers: &'a [(&'static str, String)],
    /// `None`: a body written as it is made, chunked (HTTP/1.1) or up to the close (1.0).
    pub body_length: Option<usize>,
    pub version: Version,
    pub keep_alive: bool,
}

impl ResponseHead<'_> {
    /// The serialized head, with `Date`, framing and connection headers added.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nDate: {}\r\n",
            self.status,
            reason_phrase(self.status),
            utc::http_date(SystemTime::now())
        );
        // RFC 9110 forbids a body and Content-Length in 1xx and 204 answers.
        if self.status != 204 && self.status >= 200 {
            let _ = write!(out, "Content-Type: {}\r\n", self.content_type);
            match (self.body_length, self.version) {
                (Some(length), _) => {
                    let _ = write!(out, "Content-Length: {length}\r\n");
                }
                (None, Version::Http11) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
                (None, Version::Http10) => {}
            }
        }
        for (name, value) in self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        match (self.keep_alive, self.version) {
            (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
            (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            (true, Version::Http11) => {}
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    /// A connection whose client side sends `parts` with `pause` between them, then waits.
    fn client_sending(parts: Vec<Vec<u8>>, pause: Duration) -> Connection<Stream> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut client = TcpStream::connect(address).unwrap();
            for part in parts {
                client.write_all(&part).unwrap();
                thread::sleep(pause);
            }
            thread::sleep(Duration::from_secs(3));
        });
        Connection::new(Stream::Tcp(listener.accept().unwrap().0))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(2)
    }

    /// What a client reads of a body streamed in `pieces`, for `version`.
    fn streamed(version: Version, pieces: &[Vec<u8>]) -> Vec<u8> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut connection = Connection::new(Stream::Tcp(listener.accept().unwrap().0));
        let reader = thread::spawn(move || {
            let mut received = Vec::new();
            client.read_to_end(&mut received).unwrap();
            received
        });
        let mut body = StreamedBody::new(&mut connection, version, soon());
        for piece in pieces {
            body.write_all(piece).unwrap();
        }
        body.finish().unwrap();
        connection
            .stream()
            .shutdown(std::net::Shutdown::Both)
            .unwrap();
        reader.join().unwrap()
    }

    #[test]
    fn streamed_bodies_arrive_whole_with_small_writes_gathered() {
        let pieces: Vec<Vec<u8>> = [
            0,
            5,
            16 << 10,
            0,
            60 << 10,
            100 << 10,
            64 << 10,
            3,
            40 << 10,
        ]
        .iter()
        .enumerate()
        .map(|(i, &len)| vec![b'a' + i as u8; len])
        .collect();
        let expected = pieces.concat();
        let mut raw = &streamed(Version::Http11, &pieces)[..];
        let mut body = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16).unwrap();
            raw = &raw[line_end + 2..];
            if size == 0 {
                assert_eq!(raw, b"\r\n", "the last chunk ends the body");
                break;
            }
            body.extend_from_slice(&raw[..size]);
            assert_eq!(&raw[size..size + 2], b"\r\n");
            raw = &raw[size + 2..];
            sizes.push(size);
        }
        assert_eq!(body, expected);
        assert_eq!(
            sizes,
            [
                5 + (16 << 10),
                60 << 10,
                100 << 10,
                64 << 10,
                3 + (40 << 10)
            ]
        );
        // HTTP/1.0: the bytes as they are, ended by the close.
        assert_eq!(streamed(Version::Http10, &pieces), expected);
    }

    fn head_of(text: &str) -> Result<Head, ReadError> {
        let mut connection = client_sending(vec![text.as_bytes().to_vec()], Duration::ZERO);
        connection
            .read_head(soon(), Duration::from_secs(2))
            .map(|(head, _)| head)
    }

    fn status_of(error: ReadError) -> u16 {
        match error {
            ReadError::Bad { status, .. } => status,
            other => panic!("not a protocol error: {other:?}"),
        }
    }

    #[test]
    fn pipelined_requests_are_read_one_after_the_other() {
        let text = "POST /write HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                    GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding:  gzip \r\n\r\n";
        let mut connection = client_sending(vec![text.as_bytes().to_vec()], Duration::ZERO);
        let (head, _) = connection
            .read_head(soon(), Duration::from_secs(2))
            .unwrap();
        assert_eq!((head.method.as_str(), head.path()), ("POST", "/write"));
        let mut body = Vec::new();
        let framing = head.framing().unwrap();
        connection
            .read_body(framing, 100, soon(), &mut body)
            .unwrap();
        assert_eq!(body, b"hello");
        let (head, _) = connection
            .read_head(soon(), Duration::from_secs(2))
            .unwrap();
        assert_eq!(head.path(), "/metrics");
        assert_eq!(head.header("accept-encoding"), Some("gzip"));
        assert!(head.keep_alive());
    }

    #[test]
    fn chunked_bodies_are_joined_and_capped() {
        let text = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        let mut connection = client_sending(vec![text.as_bytes().to_vec()], Duration::ZERO);
        let mut body = Vec::new();
        connection
            .read_body(Framing::Chunked, 11, soon(), &mut body)
            .unwrap();
        assert_eq!(body, b"hello world");

        let mut connection = client_sending(vec![text.as_bytes().to_vec()], Duration::ZERO);
        let result = connection.read_body(Framing::Chunked, 10, soon(), &mut body);
        assert_eq!(result, Err(ReadError::TooLarge));

        let mut connection = client_sending(vec![b"zz\r\n".to_vec()], Duration::ZERO);
        let result = connection.read_body(Framing::Chunked, 10, soon(), &mut body);
        assert_eq!(status_of(result.unwrap_err()), 400);
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut connection = client_sending(Vec::new(), Duration::ZERO);
        let mut body = Vec::new();
        let result = connection.read_body(Framing::Length(u64::MAX), 10, soon(), &mut body);
        assert_eq!(result, Err(ReadError::TooLarge));
        assert_eq!(
            body.capacity(),
            0,
            "nothing allocated for the announced length"
        );
    }

    #[test]
    fn a_trickled_head_times_out_from_its_first_byte() {
        let parts = b"GET / HTTP/1.1\r\n".iter().map(|b| vec![*b]).collect();
        let mut connection = client_sending(parts, Duration::from_millis(50));
        let idle = Instant::now() + Duration::from_secs(10);
        let started = Instant::now();
        let result = connection.read_head(idle, Duration::from_millis(300));
        assert_eq!(result.unwrap_err(), ReadError::TimedOut { midway: true });
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn an_idle_connection_times_out_without_a_request() {
        let mut connection = client_sending(Vec::new(), Duration::ZERO);
        let idle = Instant::now() + Duration::from_millis(100);
        let result = connection.read_head(idle, Duration::from_secs(10));
        assert_eq!(result.unwrap_err(), ReadError::TimedOut { midway: false });
    }

    #[test]
    fn a_head_is_read_however_it_is_split() {
        let text = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let parts = text.chunks(3).map(<[u8]>::to_vec).collect();
        let mut connection = client_sending(parts, Duration::from_millis(1));
        let (head, _) = connection
            .read_head(soon(), Duration::from_secs(2))
            .unwrap();
        assert_eq!(head.version, Version::Http10);
        assert!(head.keep_alive());
    }

    #[test]
    fn malformed_and_ambiguous_heads_are_refused() {
        let cases = [
            ("GET /\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            ("GET nope HTTP/1.1\r\n\r\n", 400),
        ];
        for (text, status) in cases {
            assert_eq!(status_of(head_of(text).unwrap_err()), status, "{text:?}");
        }
        let framing = |headers: &str| {
            head_of(&format!("POST / HTTP/1.1\r\n{headers}\r\n"))
                .unwrap()
                .framing()
        };
        assert_eq!(framing("Content-Length: 7\r\n"), Ok(Framing::Length(7)));
        assert_eq!(
            framing("Content-Length: 7\r\nContent-Length: 7\r\n"),
            Ok(Framing::Length(7))
        );
        assert_eq!(framing(""), Ok(Framing::None));
        assert_eq!(framing("Content-Length: 0\r\n"), Ok(Framing::None));
        assert_eq!(
            framing("Transfer-Encoding: Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        for (headers, status) in [
            ("Content-Length: 7\r\nContent-Length: 8\r\n", 400),
            ("Content-Length: -1\r\n", 400),
            ("Content-Length: 99999999999999999999999\r\n", 400),
            ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400),
            ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ] {
            assert_eq!(
                status_of(framing(headers).unwrap_err()),
                status,
                "{headers}"
            );
        }
    }

    #[test]
    fn heads_httparse_refuses_get_a_reason() {
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(status_of(head_of(&many).unwrap_err()), 431);
        let mut latin1 = b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n".to_vec();
        let mut connection = client_sending(vec![std::mem::take(&mut latin1)], Duration::ZERO);
        let result = connection.read_head(soon(), Duration::from_secs(2));
        assert_eq!(status_of(result.unwrap_err()), 400, "a value not in UTF-8");
        let ReadError::Bad { reason, .. } =
            head_of("GET / HTTP/1.1\r\nno colon\r\n\r\n").unwrap_err()
        else {
            panic!("not refused")
        };
        assert!(reason.contains("GET / HTTP/1.1"), "{reason}");
    }

    #[test]
    fn chunk_size_lines_must_be_hex_and_short() {
        for line in [
            "\r\nhello\r\n0\r\n\r\n",
            ";ext\r\n",
            "5\nhello\r\n0\r\n\r\n",
            "-5\r\n",
            "11111111111111111\r\n",
        ] {
            let mut connection = client_sending(vec![line.as_bytes().to_vec()], Duration::ZERO);
            let mut body = Vec::new();
            let result = connection.read_body(Framing::Chunked, 100, soon(), &mut body);
            assert_eq!(status_of(result.unwrap_err()), 400, "{line:?}");
        }
        let long = format!(
            "5;{}\r\nhello\r\n0\r\n\r\n",
            "e".repeat(MAX_CHUNK_LINE_BYTES)
        );
        let mut connection = client_sending(vec![long.into_bytes()], Duration::ZERO);
        let result = connection.read_body(Framing::Chunked, 100, soon(), &mut Vec::new());
        assert_eq!(
            status_of(result.unwrap_err()),
            400,
            "an extension past the line cap"
        );
    }

    #[test]
    fn an_oversized_head_is_431() {
        let text = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(status_of(head_of(&text).unwrap_err()), 431);
    }

    #[test]
    fn absolute_targets_become_paths() {
        assert_eq!(
            origin_form("http://h:1/metrics?a").as_deref(),
            Some("/metrics?a")
        );
        assert_eq!(origin_form("http://h?a").as_deref(), Some("/?a"));
        assert_eq!(origin_form("http://h").as_deref(), Some("/"));
        assert_eq!(origin_form("*"), None);
    }

    #[test]
    fn answers_carry_framing_and_connection_headers() {
        let head = |status, keep_alive, version| {
            let head = ResponseHead {
                status,
                content_type: "text/plain",
                headers: &[("Allow", "GET".into())],
                body_length: Some(3),
                version,
                keep_alive,
            };
            String::from_utf8(head.to_bytes()).unwrap()
        };
        let ok = head(200, true, Version::Http11);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{ok}");
        assert!(
            ok.contains("\r\nContent-Length: 3\r\nAllow: GET\r\n\r\n"),
            "{ok}"
        );
        assert!(head(204, true, Version::Http11)
            .find("Content-Length")
            .is_none());
        assert!(head(400, false, Version::Http11).contains("Connection: close\r\n"));
        assert!(head(200, true, Version::Http10).contains("Connection: keep-alive\r\n"));
    }
}
