//! Connections: admitting them under a cap, and serving each on a thread of its own, with a
//! deadline on every read and write.
//!
//! A connection thread reads a whole request (head, then the body its endpoint takes), hands
//! it to the worker pool, and writes the answer. It is cheap (a small stack, mostly asleep in
//! `read`), so clients that trickle bytes or stop reading tie up only their own threads, and
//! well-behaved clients are still answered as long as connections are below the cap:
//! - `--web.read-timeout`: the first request on a new connection, and every request's head and
//!   body from its first byte, must arrive within it; else 408 and close.
//! - `--web.idle-timeout`: how long a kept-alive connection may wait for its next request.
//! - `--web.write-timeout`: how long a client may take to receive one whole answer.
//! - `--web.max-connections`: beyond it, a new connection gets 503 and is closed.
//! - `--web.max-bytes-in-flight`: write bodies being read and answers being written hold
//!   memory against it ([`crate::web::budget`]); a request that would pass it gets 503.

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::ops::log::{self, RateLimited};
use crate::ops::telemetry::{ConnectionStats, HttpError};
use crate::web::auth::CHALLENGE;
use crate::web::budget::{Budget, SparePool};
use crate::web::http1::{
    close_after_answer, AnyTransport, Connection, Framing, Head, ReadError, ResponseHead,
    StreamedBody, Transport, Version,
};
use crate::web::reload::LiveWebConfig;
use crate::web::routes::{self, App, Reply, Request};
use crate::web::socket::{Listener, Stream};
use crate::web::tls::{self, HandshakeError};
use crate::web::workers::{AnswerSlot, Workers};

/// Stack of a connection thread: it parses and copies bytes and renders pages; handlers, and
/// the compression of gzip and zstd pages, run on the workers. Only the part used becomes resident.
const CONNECTION_STACK_BYTES: usize = 1 << 20;

/// The largest body buffer kept for reuse between requests: a remote-write body is typically
/// 100 to 300 KiB, an uncompressed OTLP body a few MiB, and allocating them afresh per request
/// is slow with musl's allocator (a large one is mapped and unmapped each time). How much is
/// kept in all, outside `--web.max-bytes-in-flight`, is [`Limits::spare_bodies_bytes`]: 16 MiB,
/// or less under a memory limit (`crate::ops::sizing`).
const SPARE_BODY_BYTES: usize = 4 << 20;

/// How long to wait before accepting again after `accept()` failed (for example with no file
/// descriptor left), so that the failure does not spin a core.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Answers up to this size go out with their head in one write.
const SMALL_ANSWER_BYTES: usize = 16 << 10;

/// Answers written on the way out (503 at the cap, 408, 400) get this long at most.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// The connection limits in force, from the `--web.*` flags.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_bytes_in_flight: usize,
    pub spare_bodies_bytes: usize,
}

/// What the acceptor and every connection thread share.
pub struct Connections {
    app: Arc<App>,
    workers: Workers,
    limits: Limits,
    web: Arc<LiveWebConfig>,
    in_flight: AtomicUsize,
    bytes_in_flight: Budget,
    spare_bodies: SparePool,
    stopping: AtomicBool,
}

/// Counts a value up while it lives.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a request ended: answered (keeping the connection or not), or broken off.
enum Outcome {
    Answer { reply: Reply, keep_alive: bool },
    Broken(ReadError),
}

impl Connections {
    pub fn new(
        app: Arc<App>,
        workers: Workers,
        limits: Limits,
        web: Arc<LiveWebConfig>,
    ) -> Arc<Connections> {
        app.telemetry
            .connections
            .limit
            .store(limits.max_connections, Ordering::Relaxed);
        Arc::new(Connections {
            app,
            workers,
            limits,
            web,
            in_flight: AtomicUsize::new(0),
            bytes_in_flight: Budget::new(limits.max_bytes_in_flight),
            spare_bodies: SparePool::new(
                SPARE_BODY_BYTES.min(limits.spare_bodies_bytes),
                limits.spare_bodies_bytes,
            ),
            stopping: AtomicBool::new(false),
        })
    }

    /// The cap of `--web.max-bytes-in-flight`, set again when the memory limit it derives from
    /// changes.
    pub fn set_max_bytes_in_flight(&self, bytes: usize) {
        self.bytes_in_flight.set_limit(bytes);
    }

    /// Accepts connections on `listener` from a thread of its own, for as long as the process runs.
    pub fn spawn_acceptor(self: &Arc<Self>, listener: Listener) -> std::io::Result<()> {
        let connections = Arc::clone(self);
        thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || connections.accept_forever(&listener))?;
        Ok(())
    }

    /// Stops taking new requests: connections close after the answer they are writing.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits until no request is being read, answered or written, or `deadline` passes;
    /// returns whether none is left.
    pub fn wait_for_requests_in_flight(&self, deadline: Instant) -> bool {
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn stats(&self) -> &ConnectionStats {
        &self.app.telemetry.connections
    }

    fn accept_forever(self: Arc<Self>, listener: &Listener) {
        let failure_log = RateLimited::new(Duration::from_secs(10));
        loop {
            match listener.accept() {
                Ok(stream) if !self.stopping.load(Ordering::SeqCst) => self.admit(stream),
                Ok(_) => {}
                Err(e) => {
                    self.stats().record(HttpError::AcceptFailed);
                    if let Some(held_back) = failure_log.admit(Instant::now()) {
                        log::warn(
                            "accepting a connection failed; retrying",
                            &[("err", &e), ("similar_lines_held_back", &held_back)],
                        );
                    }
                    thread::sleep(ACCEPT_RETRY_DELAY);
                }
            }
        }
    }

    /// Serves `stream` on a new thread, or refuses it with 503 when the cap is reached.
    fn admit(self: &Arc<Self>, stream: Stream) {
        let open = &self.stats().open;
        if open.fetch_add(1, Ordering::SeqCst) >= self.limits.max_connections {
            open.fetch_sub(1, Ordering::SeqCst);
            self.stats().record(HttpError::ConnectionLimit);
            let reason = format!(
                "too many connections (--web.max-connections={}); retry later",
                self.limits.max_connections
            );
            let mut reply = Reply::text(503, &reason);
            self.add_configured_headers(&mut reply);
            return refuse(stream, &reply);
        }
        let connections = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("connection".into())
            .stack_size(CONNECTION_STACK_BYTES)
            .spawn(move || {
                // Nothing a client sends should panic here; if something does, the panic hook
                // logs it and the connection still stops counting against the cap.
                let _ = catch_unwind(AssertUnwindSafe(|| connections.serve(stream)));
                connections.stats().open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
            self.stats().record(HttpError::AcceptFailed);
        }
    }

    fn serve(&self, stream: Stream) {
        let accepted = Instant::now();
        stream.set_nodelay();
        // The configuration in force now serves this connection to its end.
        let web = self.web.current();
        let Some(tls_config) = &web.tls else {
            return self.serve_requests(&mut Connection::new(Box::new(stream)), accepted);
        };
        match tls::accept(tls_config, stream, accepted + self.limits.read_timeout) {
            Ok(stream) => self.serve_requests(&mut Connection::new(Box::new(stream)), accepted),
            Err(error) => {
                self.stats().record(HttpError::TlsHandshake);
                if let HandshakeError::Failed(reason) = error {
                    log::log(
                        log::Level::Debug,
                        "TLS handshake failed",
                        &[("err", &reason)],
                    );
                }
            }
        }
    }

    /// Answers requests on one connection until it closes, breaks, idles out or must close.
    fn serve_requests(&self, connection: &mut Connection<AnyTransport>, accepted: Instant) {
        let limits = self.limits;
        let slot = AnswerSlot::default();
        // The first request, and a TLS handshake before it, are due within the read timeout.
        let mut idle_deadline = accepted + limits.read_timeout;
        loop {
            let (head, started) = match connection.read_head(idle_deadline, limits.read_timeout) {
                Ok(read) => read,
                Err(error) => return self.break_off(connection, error),
            };
            let in_flight = Counted::new(&self.in_flight);
            let (version, head_only) = (head.version, head.method == "HEAD");
            let deadline = started + limits.read_timeout;
            let (mut reply, keep_alive) = match self.answer(connection, head, deadline, &slot) {
                Outcome::Answer { reply, keep_alive } => (reply, keep_alive),
                Outcome::Broken(error) => return self.break_off(connection, error),
            };
            // An HTTP/1.0 client learns where a streamed page ends from the close.
            let streamed_to_close = reply.page.is_some() && version == Version::Http10;
            let keep_alive =
                keep_alive && !streamed_to_close && !self.stopping.load(Ordering::SeqCst);
            // What an answer holds while a slow client takes it counts until it is written: a
            // page's snapshot and chunk, or a large body. Small answers, which go out in one
            // write, need no reservation (nor can a write's answer be lost to one).
            let holds = match &mut reply.page {
                Some(page) => {
                    page.fit_to_budget(self.bytes_in_flight.limit());
                    Some(page.held_bytes())
                }
                None => (reply.body.len() > SMALL_ANSWER_BYTES).then_some(reply.body.len()),
            };
            let reservation = holds.map(|bytes| self.bytes_in_flight.reserve(bytes));
            let (reply, keep_alive) = match reservation {
                Some(None) => (self.over_budget(), false),
                _ => (reply, keep_alive),
            };
            let _held_reply = reservation.flatten();
            let write_deadline = Instant::now() + limits.write_timeout;
            let written = self.write_reply(
                connection,
                reply,
                version,
                keep_alive,
                head_only,
                write_deadline,
            );
            if let Err(e) = written {
                if Instant::now() >= write_deadline
                    || matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                {
                    self.stats().record(HttpError::WriteTimeout);
                }
                return;
            }
            if !keep_alive {
                // The answer is out: a graceful stop need not wait for the drain.
                drop(in_flight);
                return close_after_answer(connection.stream().socket());
            }
            idle_deadline = Instant::now() + limits.idle_timeout;
        }
    }

    /// Reads the body the endpoint takes, if any, and has the request answered by a worker.
    fn answer(
        &self,
        connection: &mut Connection<AnyTransport>,
        head: Head,
        deadline: Instant,
        slot: &AnswerSlot,
    ) -> Outcome {
        let framing = match head.framing() {
            Ok(framing) => framing,
            Err(error) => return Outcome::Broken(error),
        };
        let mut keep_alive = head.keep_alive();
        let mut body = Vec::new();
        // Held until the worker has given the body back.
        let mut held_body = None;
        let web = self.web.current();
        // Liveness probes must keep working whatever the load: /healthz is not rate limited.
        if let Some(limiter) = web
            .rate_limit
            .as_ref()
            .filter(|_| head.path() != "/healthz")
        {
            if let Err(wait) = limiter.take() {
                self.stats().record(HttpError::RateLimited);
                let mut reply = Reply::text(
                    429,
                    "too many requests (rate_limit of --web.config.file); retry later",
                );
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                reply
                    .headers
                    .push(("Retry-After", seconds.max(1).to_string()));
                return Outcome::Answer {
                    reply,
                    keep_alive: keep_alive && framing == Framing::None,
                };
            }
        }
        if let Some(auth) = &web.basic_auth {
            // Liveness probes cannot always send credentials, and "ok" tells nobody anything.
            if head.path() != "/healthz" && !auth.admits(head.header("Authorization")) {
                self.stats().record(HttpError::Unauthorized);
                let mut reply =
                    Reply::text(401, "unauthorized: valid basic-auth credentials needed");
                reply
                    .headers
                    .push(("WWW-Authenticate", CHALLENGE.to_owned()));
                return Outcome::Answer {
                    reply,
                    keep_alive: keep_alive && framing == Framing::None,
                };
            }
        }
        match routes::body_limit(&self.app, &head) {
            // An unread body would be taken for the next request: close after answering.
            Err(reply) => {
                return Outcome::Answer {
                    reply,
                    keep_alive: keep_alive && framing == Framing::None,
                }
            }
            Ok(None) => keep_alive &= framing == Framing::None,
            Ok(Some(limit)) => {
                if let Framing::Length(length) = framing {
                    if length > limit as u64 {
                        let reply = routes::body_too_large(&self.app, Some(length));
                        return Outcome::Answer {
                            reply,
                            keep_alive: false,
                        };
                    }
                }
                // A chunked body does not say how large it will be: it may take the limit.
                let expected = match framing {
                    Framing::Length(length) => length as usize,
                    Framing::Chunked => limit,
                    Framing::None => 0,
                };
                let Some(held) = self.bytes_in_flight.reserve(expected) else {
                    return Outcome::Answer {
                        reply: self.over_budget(),
                        keep_alive: false,
                    };
                };
                held_body = Some(held);
                if head.expects_continue() && framing != Framing::None {
                    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
                    if connection.write_by(deadline, interim).is_err() {
                        return Outcome::Broken(ReadError::Closed);
                    }
                }
                body = self.spare_bodies.take();
                match connection.read_body(framing, limit, deadline, &mut body) {
                    Ok(()) => {}
                    Err(ReadError::TooLarge) => {
                        let reply = routes::body_too_large(&self.app, None);
                        return Outcome::Answer {
                            reply,
                            keep_alive: false,
                        };
                    }
                    Err(error) => return Outcome::Broken(error),
                }
            }
        }
        let request = Request { head, body };
        let Some((reply, request)) = self.workers.answer(request, slot) else {
            return Outcome::Answer {
                reply: Reply::text(503, "shutting down"),
                keep_alive: false,
            };
        };
        self.spare_bodies.give_back(request.body);
        drop(held_body);
        Outcome::Answer { reply, keep_alive }
    }

    /// The 503 for a request that would pass `--web.max-bytes-in-flight`; Prometheus's remote
    /// write retries it.
    fn over_budget(&self) -> Reply {
        self.stats().record(HttpError::BytesInFlightLimit);
        let reason = format!(
            "too many bytes in flight (--web.max-bytes-in-flight={}); retry later",
            self.bytes_in_flight.limit()
        );
        let mut reply = Reply::text(503, &reason);
        reply.headers.push(("Retry-After", "1".to_owned()));
        reply
    }

    /// Ends a connection whose request could not be read: says why when a request had begun.
    fn break_off(&self, connection: &mut Connection<AnyTransport>, error: ReadError) {
        let reply = match error {
            ReadError::Closed | ReadError::TimedOut { midway: false } => return,
            ReadError::TimedOut { midway: true } => {
                self.stats().record(HttpError::ReadTimeout);
                let reason = format!(
                    "request not received within --web.read-timeout={}",
                    crate::base::units::format_duration(self.limits.read_timeout)
                );
                Reply::text(408, &reason)
            }
            ReadError::Bad { status, reason } => {
                self.stats().record(HttpError::BadRequest);
                Reply::text(status, &reason)
            }
            ReadError::TooLarge => {
                self.stats().record(HttpError::BadRequest);
                Reply::text(413, "request body too large")
            }
        };
        let deadline = Instant::now() + FAREWELL_TIMEOUT;
        let _ = self.write_reply(connection, reply, Version::Http11, false, false, deadline);
        close_after_answer(connection.stream().socket());
    }
}

impl Connections {
    /// The headers of the web config file's `http_server_config.headers`, which every answer
    /// carries.
    fn add_configured_headers(&self, reply: &mut Reply) {
        let web = self.web.current();
        reply.headers.extend(
            web.headers
                .iter()
                .map(|(name, value)| (*name, value.clone())),
        );
    }

    /// Writes an answer before `deadline`: small ones in one piece, a large body after its head,
    /// a page as it is rendered.
    fn write_reply(
        &self,
        connection: &mut Connection<AnyTransport>,
        reply: Reply,
        version: Version,
        keep_alive: bool,
        head_only: bool,
        deadline: Instant,
    ) -> std::io::Result<()> {
        let mut reply = reply;
        self.add_configured_headers(&mut reply);
        let body_length = reply.page.is_none().then_some(reply.body.len());
        let mut bytes = response_head(&reply, version, keep_alive, body_length);
        if let Some(page) = reply.page {
            connection.write_by(deadline, &bytes)?;
            if head_only {
                return Ok(());
            }
            let mut body = StreamedBody::new(connection, version, deadline);
            let offload = |task| self.workers.offload(task);
            routes::write_page(&self.app, *page, &mut body, &offload)?;
            return body.finish();
        }
        let body = if head_only { &[][..] } else { &reply.body[..] };
        if body.len() <= SMALL_ANSWER_BYTES {
            bytes.extend_from_slice(body);
            return connection.write_by(deadline, &bytes);
        }
        connection.write_by(deadline, &bytes)?;
        connection.write_by(deadline, body)
    }
}

fn response_head(
    reply: &Reply,
    version: Version,
    keep_alive: bool,
    body_length: Option<usize>,
) -> Vec<u8> {
    ResponseHead {
        status: reply.status,
        content_type: &reply.content_type,
        headers: &reply.headers,
        body_length,
        version,
        keep_alive,
    }
    .to_bytes()
}

/// Writes `reply` to a connection that will not be served, without waiting on the client.
fn refuse(mut stream: Stream, reply: &Reply) {
    let mut bytes = response_head(reply, Version::Http11, false, Some(reply.body.len()));
    bytes.extend_from_slice(&reply.body);
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write_all(&bytes);
    }
}
