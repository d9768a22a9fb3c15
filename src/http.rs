//! The HTTP layer: routes requests to handlers, answers, and counts.
//!
//! Handlers build a complete [`Reply`] in memory (pages are rendered from a snapshot, with no
//! lock held) before a byte goes to the socket, so a slow client never holds up the store.

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use flate2::Compression;
use tiny_http::{Header, Method, Request, Response};

use crate::decode::{check_headers, decode, read_body, Rejection};
use crate::exposition::{render, TEXT_CONTENT_TYPE};
use crate::ingest::ingest;
use crate::landing::{landing_page, LandingFacts};
use crate::log::{self, RateLimited};
use crate::process;
use crate::store::Store;
use crate::telemetry::{Gauges, Telemetry};
use crate::wire::WriteBatch;

/// Paths that ingest remote write: ours, and the one Prometheus's own receiver uses.
pub const WRITE_PATHS: [&str; 2] = ["/write", "/api/v1/write"];

/// Settings the handlers need, fixed at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    pub telemetry_path: String,
    pub exporter_telemetry_path: String,
    pub expose_timestamps: bool,
    pub max_bytes: usize,
    pub max_decoded_bytes: usize,
    pub ttl: Duration,
    /// Every flag in effect, as `name=value`, for the landing page.
    pub flags_in_effect: Vec<(String, String)>,
}

/// Everything a request handler reaches.
pub struct App {
    pub store: Arc<Store>,
    pub telemetry: Telemetry,
    pub settings: Settings,
    rejected_write_log: RateLimited,
}

impl App {
    pub fn new(store: Arc<Store>, settings: Settings) -> App {
        App {
            store,
            telemetry: Telemetry::default(),
            settings,
            rejected_write_log: RateLimited::new(Duration::from_secs(10)),
        }
    }
}

/// An answer, built before anything is written to the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A one-line plain-text answer, as every error is.
    pub fn text(status: u16, line: &str) -> Reply {
        let mut body = line.replace(['\n', '\r'], " ").into_bytes();
        body.push(b'\n');
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn not_allowed(allow: &str) -> Reply {
        let mut reply = Reply::text(405, &format!("method not allowed; allowed: {allow}"));
        reply.headers.push(("Allow", allow.to_owned()));
        reply
    }

    /// Compresses the body when the client accepts gzip. Level 1: scrape pages are repetitive
    /// enough that the fastest level already shrinks them about tenfold.
    fn gzip_if_accepted(mut self, accept_encoding: Option<&str>) -> Reply {
        if !accepts_gzip(accept_encoding) {
            return self;
        }
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(self.body.len() / 8), Compression::fast());
        if encoder.write_all(&self.body).is_ok() {
            if let Ok(compressed) = encoder.finish() {
                self.body = compressed;
                self.headers.push(("Content-Encoding", "gzip".into()));
            }
        }
        self.headers.push(("Vary", "Accept-Encoding".into()));
        self
    }
}

/// Whether an `Accept-Encoding` value admits gzip (and does not refuse it with `q=0`).
fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|parameter| {
                let parameter = parameter.replace(' ', "");
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// The largest announced but unread body left for tiny_http to drain after answering: far above
/// any remote-write request a real sender makes, far below what an allocation can fail on.
const UNREAD_BODY_LIMIT: usize = 256 << 20;

/// Answers one request; a panic in the handler becomes a 500 and a counter, never a dead worker.
pub fn handle(app: &App, mut request: Request) {
    let mut body_read = false;
    let reply = respond_catching_panics(app, || route(app, &mut request, &mut body_read));
    if !body_read && request.body_length().unwrap_or(0) > UNREAD_BODY_LIMIT {
        return answer_and_abandon(request, reply);
    }
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    let content_type = Header::from_bytes("Content-Type", reply.content_type);
    response.add_header(content_type.expect("static header is valid"));
    for (name, value) in reply.headers {
        if let Ok(header) = Header::from_bytes(name, value) {
            response.add_header(header);
        }
    }
    // A client that went away mid-answer is its own loss; nothing to do here.
    let _ = request.respond(response);
}

/// Answers a request whose announced body was not read, without letting tiny_http drain it.
///
/// tiny_http 0.12 drains an unread body when the request is dropped, into one buffer as large
/// as the announced `Content-Length`: a client announcing terabytes makes that allocation fail
/// and the process abort. `upgrade` is the one call that answers and hands the body reader out
/// instead. It writes the status line and headers only, so the one-line reason follows on the
/// raw stream, and the connection is then left alone for good (its socket and tiny_http thread
/// are leaked; the client sees the end of the answer only when it gives up): one lost connection
/// per such request instead of a dead server.
fn answer_and_abandon(request: Request, reply: Reply) {
    let head = Response::empty(reply.status).with_header(
        Header::from_bytes("Content-Type", reply.content_type).expect("static header is valid"),
    );
    let mut stream = request.upgrade("none", head);
    let _ = stream.write_all(&reply.body).and_then(|()| stream.flush());
    std::mem::forget(stream);
}

/// Runs a handler, turning a panic into a 500 answer and a counted event.
pub fn respond_catching_panics(app: &App, handler: impl FnOnce() -> Reply) -> Reply {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        app.telemetry.record_panic();
        Reply::text(
            500,
            "internal error: the request handler panicked; see the server log",
        )
    })
}

/// Serves one request; `body_read` says whether its whole body was read.
fn route(app: &App, request: &mut Request, body_read: &mut bool) -> Reply {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let method = request.method().clone();
    let is_get = matches!(method, Method::Get | Method::Head);
    let settings = &app.settings;
    if WRITE_PATHS.contains(&path.as_str()) {
        return if method == Method::Post {
            write(app, request, body_read)
        } else {
            Reply::not_allowed("POST")
        };
    }
    if ![
        settings.telemetry_path.as_str(),
        settings.exporter_telemetry_path.as_str(),
        "/healthz",
        "/",
    ]
    .contains(&path.as_str())
    {
        return Reply::text(
            404,
            &format!("no such path {path:?}; see / for the endpoints"),
        );
    }
    if !is_get {
        return Reply::not_allowed("GET, HEAD");
    }
    let accept_encoding = header(request, "Accept-Encoding");
    if path == settings.telemetry_path {
        scrape(app).gzip_if_accepted(accept_encoding.as_deref())
    } else if path == settings.exporter_telemetry_path {
        exporter_metrics(app).gzip_if_accepted(accept_encoding.as_deref())
    } else if path == "/healthz" {
        Reply::text(200, "ok")
    } else {
        landing(app)
    }
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_owned())
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn write(app: &App, request: &mut Request, body_read: &mut bool) -> Reply {
    let started = Instant::now();
    let mut body_bytes = None;
    let reply = match receive(app, request, &mut body_bytes) {
        Ok(reply) => reply,
        Err(rejection) => Reply::text(rejection.status, &rejection.reason),
    };
    if reply.status >= 400 {
        if let Some(held_back) = app.rejected_write_log.admit(Instant::now()) {
            let reason = String::from_utf8_lossy(&reply.body).trim_end().to_owned();
            log::warn(
                "write request rejected",
                &[
                    ("code", &reply.status),
                    ("reason", &reason),
                    ("similar_lines_held_back", &held_back),
                ],
            );
        }
    }
    *body_read = body_bytes.is_some();
    let body_bytes = body_bytes.unwrap_or(0);
    app.telemetry
        .record_write(reply.status, started.elapsed(), body_bytes);
    reply
}

/// What a worker reuses from one write request to the next, so that steady-state ingest
/// allocates nothing for the body, the decompressed request or its index.
#[derive(Default)]
struct WriteScratch {
    body: Vec<u8>,
    batch: WriteBatch,
}

impl WriteScratch {
    /// Gives back the memory an unusually large request made this thread hold.
    fn shrink(&mut self) {
        if self.body.capacity() > 4 << 20 {
            self.body = Vec::new();
        }
        self.batch.shrink();
    }
}

thread_local! {
    static WRITE_SCRATCH: std::cell::RefCell<WriteScratch> = std::cell::RefCell::default();
}

/// Reads, decodes and stores one write request; `body_bytes` is set once the body is read.
fn receive(
    app: &App,
    request: &mut Request,
    body_bytes: &mut Option<usize>,
) -> Result<Reply, Rejection> {
    check_headers(
        header(request, "Content-Encoding").as_deref(),
        header(request, "Content-Type").as_deref(),
    )?;
    let declared_length = request.body_length();
    let now_ms = unix_now_ms();
    let report = WRITE_SCRATCH.with_borrow_mut(|scratch| {
        let settings = &app.settings;
        read_body(
            request.as_reader(),
            declared_length,
            settings.max_bytes,
            &mut scratch.body,
        )?;
        *body_bytes = Some(scratch.body.len());
        let decoded = decode(
            &scratch.body,
            settings.max_decoded_bytes,
            &mut scratch.batch,
        );
        let report = decoded.map(|()| ingest(&app.store, &scratch.batch, now_ms, app.store.tick()));
        scratch.shrink();
        report
    })?;
    app.telemetry.record_report(&report, now_ms);
    Ok(if report.is_clean() {
        Reply::empty(204)
    } else {
        Reply::text(400, &report.summary())
    })
}

fn scrape(app: &App) -> Reply {
    let started = Instant::now();
    let snapshot = app.store.snapshot();
    let body = render(&snapshot, app.settings.expose_timestamps);
    drop(snapshot);
    app.telemetry.record_scrape(started.elapsed());
    Reply {
        status: 200,
        content_type: TEXT_CONTENT_TYPE,
        headers: Vec::new(),
        body,
    }
}

fn exporter_metrics(app: &App) -> Reply {
    let gauges = Gauges::of(&app.store, app.settings.ttl);
    let body = app.telemetry.render(&gauges, process::read().as_ref());
    Reply {
        status: 200,
        content_type: TEXT_CONTENT_TYPE,
        headers: Vec::new(),
        body,
    }
}

fn landing(app: &App) -> Reply {
    let snapshot = app.store.snapshot();
    let facts = LandingFacts {
        series: snapshot.series.len(),
        families: crate::exposition::family_count(&snapshot),
        last_write_ms: app.telemetry.last_write_ms(),
        settings: &app.settings,
    };
    let body = landing_page(&facts).into_bytes();
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let settings = Settings {
            telemetry_path: "/metrics".into(),
            exporter_telemetry_path: "/metrics/exporter".into(),
            expose_timestamps: false,
            max_bytes: 1 << 20,
            max_decoded_bytes: 1 << 20,
            ttl: Duration::from_secs(300),
            flags_in_effect: Vec::new(),
        };
        App::new(Arc::new(Store::new(10)), settings)
    }

    #[test]
    fn a_panicking_handler_becomes_a_counted_500() {
        let app = app();
        let reply = respond_catching_panics(&app, || panic!("boom"));
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.body.iter().filter(|b| **b == b'\n').count(),
            1,
            "one line"
        );
        let page = String::from_utf8(
            app.telemetry
                .render(&Gauges::of(&app.store, app.settings.ttl), None),
        )
        .unwrap();
        assert!(
            page.contains("k8s_exporter_request_handler_panics_total 1\n"),
            "{page}"
        );
        let reply = respond_catching_panics(&app, || Reply::text(200, "fine"));
        assert_eq!(reply.status, 200, "the next request is served as usual");
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip; q=0.0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn error_replies_are_one_line() {
        let reply = Reply::text(400, "first\nsecond");
        assert_eq!(reply.body, b"first second\n");
    }
}
