//! Routes requests to handlers, answers, and counts.
//!
//! Handlers build a complete [`Reply`] in memory before a byte goes to the socket, so a slow
//! client never holds up the store or a worker; a scrape's reply is a snapshot of references,
//! which the connection renders as it writes ([`write_page`]), with no lock held. Handlers run
//! on the worker pool; the connection threads read the requests and write the answers.

use std::borrow::Cow;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::base::locks::lock;
use crate::expose::negotiate::{negotiate, Negotiated};
use crate::expose::render::{render, render_to};
use crate::expose::select::Selection;
use crate::ops::cardinality::{self, Cardinality};
use crate::ops::landing::{landing_page, LandingFacts};
use crate::ops::log::{self, RateLimited};
use crate::ops::process;
use crate::ops::telemetry::{Gauges, Telemetry};
use crate::otlp;
use crate::otlp::receive::{BodyFormat, Encoding, OTLP_PATHS};
use crate::otlp::translate::Translation;
use crate::store::{SeriesView, Snapshot, Store};
use crate::web::coding::negotiate_coding;
use crate::web::compress::{ChunkedCompressor, Codec, Task};
use crate::web::http1::{Head, STREAM_CHUNK_BYTES};
use crate::write::decode::{check_headers, decode, Rejection};
use crate::write::ingest::{ingest, Points, WriteRules};
use crate::write::wire::{Protocol, WriteBatch};

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
    pub write_rules: WriteRules,
    /// How OTLP names become Prometheus names.
    pub otlp_translation: Translation,
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
    /// The last scrape's label-block bytes, emptied, for the next ([`render_to`]). One for the
    /// process, as the store keeps one list of views: a scrape at the same moment as another
    /// makes its own.
    spare_block_bytes: Mutex<Vec<u8>>,
    /// Series and value tuples the last scrape rendered: what the memory guard takes resident
    /// memory to hold already of what scrapes cost (`crate::ops::memory`).
    pub scraped: Mutex<(usize, usize)>,
}

impl App {
    pub fn new(store: Arc<Store>, settings: Settings) -> App {
        App {
            store,
            telemetry: Telemetry::default(),
            settings,
            rejected_write_log: RateLimited::new(Duration::from_secs(10)),
            spare_block_bytes: Mutex::default(),
            scraped: Mutex::default(),
        }
    }
}

/// An answer, built before anything is written to the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Cow<'static, str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// A `/metrics` page, written as it is rendered instead of `body` ([`write_page`]).
    pub page: Option<Box<Page>>,
}

/// A `/metrics` page still to be rendered: the snapshot it shows, and how to write it.
#[derive(Debug)]
pub struct Page {
    snapshot: Snapshot,
    negotiated: Negotiated,
    expose_timestamps: bool,
    codec: Option<Codec>,
    started: Instant,
}

impl Page {
    /// Shrinks the chunks it is compressed in to what `budget` (`--web.max-bytes-in-flight`)
    /// leaves room for.
    pub fn fit_to_budget(&mut self, budget: usize) {
        self.codec = self.codec.map(|codec| codec.zstd_within(budget));
    }

    /// About what the page holds until it is written: its snapshot, one reference per series,
    /// the chunk being filled, and compressed the chunks being compressed.
    pub fn held_bytes(&self) -> usize {
        let compressing = self.codec.map_or(0, Codec::held_bytes);
        self.snapshot.series.len() * std::mem::size_of::<SeriesView>()
            + STREAM_CHUNK_BYTES
            + compressing
    }
}

impl Reply {
    /// A one-line plain-text answer, as every error is.
    pub fn text(status: u16, line: &str) -> Reply {
        let mut body = line.replace(['\n', '\r'], " ").into_bytes();
        body.push(b'\n');
        Reply {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Vec::new(),
            body,
            page: None,
        }
    }

    /// A JSON answer, as Prometheus's HTTP API gives them.
    fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
            page: None,
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Vec::new(),
            body: Vec::new(),
            page: None,
        }
    }

    /// What a remote-write 2.0 answer must say it stored (spec: "Remote-Write 2.0", written
    /// response headers), on every answer, 2xx and 4xx alike.
    fn add_written_headers(&mut self, written: Points) {
        for (header, written) in [
            ("X-Prometheus-Remote-Write-Samples-Written", written.samples),
            (
                "X-Prometheus-Remote-Write-Histograms-Written",
                written.histograms,
            ),
            (
                "X-Prometheus-Remote-Write-Exemplars-Written",
                written.exemplars,
            ),
        ] {
            self.headers.push((header, written.to_string()));
        }
    }

    fn not_allowed(allow: &str) -> Reply {
        let mut reply = Reply::text(405, &format!("method not allowed; allowed: {allow}"));
        reply.headers.push(("Allow", allow.to_owned()));
        reply
    }

    /// Compresses the body in the coding the client prefers of those we send, in one member
    /// or frame (see [`crate::web::coding`]).
    fn compress_if_accepted(mut self, accept_encoding: Option<&str>) -> Reply {
        if let Some(codec) = negotiate_coding(accept_encoding) {
            self.body = codec.compress(&self.body);
            self.headers.push(("Content-Encoding", codec.name().into()));
        }
        self
    }
}

/// A whole request: its head and, when its endpoint takes one, its body.
#[derive(Debug)]
pub struct Request {
    pub head: Head,
    pub body: Vec<u8>,
}

/// Whether the endpoint of `head` reads a body, and up to how many bytes: `Err` is the answer
/// for a write whose headers already rule it out (415), given before its body is read.
pub fn body_limit(app: &App, head: &Head) -> Result<Option<usize>, Reply> {
    if head.method == "POST" && OTLP_PATHS.contains(&head.path()) {
        return match otlp_headers(head) {
            Ok(_) => Ok(Some(app.settings.max_bytes)),
            Err(rejection) => Err(refuse_otlp(app, None, rejection)),
        };
    }
    if head.method != "POST" || !WRITE_PATHS.contains(&head.path()) {
        return Ok(None);
    }
    match check_headers(head.header("Content-Encoding"), head.header("Content-Type")) {
        Ok(_) => Ok(Some(app.settings.max_bytes)),
        Err(rejection) => Err(refuse_write(app, Instant::now(), rejection, 0)),
    }
}

/// The answer to a write whose body passes `--write.max-bytes`, declared or as it arrives.
pub fn body_too_large(app: &App, declared: Option<u64>) -> Reply {
    let max_bytes = app.settings.max_bytes;
    let size = declared.map_or_else(|| format!("more than {max_bytes}"), |n| n.to_string());
    let rejection = Rejection::new(
        413,
        format!("request body of {size} bytes exceeds --write.max-bytes={max_bytes}"),
    );
    refuse_write(app, Instant::now(), rejection, 0)
}

/// Answers one request; a panic in the handler becomes a 500 and a counter.
pub fn handle(app: &App, request: &Request) -> Reply {
    respond_catching_panics(app, || route(app, request))
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

fn route(app: &App, request: &Request) -> Reply {
    let head = &request.head;
    let path = head.path();
    let is_get = matches!(head.method.as_str(), "GET" | "HEAD");
    let settings = &app.settings;
    if WRITE_PATHS.contains(&path) || OTLP_PATHS.contains(&path) {
        return match (head.method.as_str(), WRITE_PATHS.contains(&path)) {
            ("POST", true) => write(app, request),
            ("POST", false) => otlp(app, request),
            _ => Reply::not_allowed("POST"),
        };
    }
    if ![
        settings.telemetry_path.as_str(),
        settings.exporter_telemetry_path.as_str(),
        "/healthz",
        TSDB_STATUS_PATH,
        "/",
    ]
    .contains(&path)
    {
        return Reply::text(
            404,
            &format!("no such path {path:?}; see / for the endpoints"),
        );
    }
    if !is_get {
        return Reply::not_allowed("GET, HEAD");
    }
    let accept_encoding = head.header("Accept-Encoding");
    if path == settings.telemetry_path {
        scrape(app, head)
    } else if path == settings.exporter_telemetry_path {
        exporter_metrics(app, head).compress_if_accepted(accept_encoding)
    } else if path == "/healthz" {
        Reply::text(200, "ok")
    } else if path == TSDB_STATUS_PATH {
        tsdb_status(app, head).compress_if_accepted(accept_encoding)
    } else {
        landing(app)
    }
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn write(app: &App, request: &Request) -> Reply {
    let started = Instant::now();
    let head = &request.head;
    let protocol = match check_headers(head.header("Content-Encoding"), head.header("Content-Type"))
    {
        Ok(protocol) => protocol,
        Err(rejection) => return refuse_write(app, started, rejection, request.body.len()),
    };
    let (mut reply, written) = match receive(app, &request.body, protocol) {
        Ok((reply, written)) => {
            if reply.status >= 400 {
                log_rejected_write(app, reply.status, &reason_of(&reply));
            }
            app.telemetry
                .record_write(reply.status, started.elapsed(), request.body.len());
            (reply, written)
        }
        Err(rejection) => (
            refuse_write(app, started, rejection, request.body.len()),
            Points::default(),
        ),
    };
    if protocol == Protocol::V2 {
        reply.add_written_headers(written);
    }
    reply
}

fn otlp_headers(head: &Head) -> Result<BodyFormat, Rejection> {
    otlp::receive::check_headers(head.header("Content-Encoding"), head.header("Content-Type"))
}

/// An OTLP export: its points stored as Prometheus 3 translates them, answered with what was
/// refused in the request's encoding.
fn otlp(app: &App, request: &Request) -> Reply {
    let format = match otlp_headers(&request.head) {
        Ok(format) => format,
        Err(rejection) => return refuse_otlp(app, None, rejection),
    };
    let now_ms = unix_now_ms();
    let settings = &app.settings;
    let rules = otlp::receive::Rules {
        write: &settings.write_rules,
        translation: &settings.otlp_translation,
        max_decoded_bytes: settings.max_decoded_bytes,
    };
    let received = OTLP_SPARE.with_borrow_mut(|spare| {
        let received =
            otlp::receive::receive(&app.store, &request.body, format, &rules, now_ms, spare);
        spare.shrink();
        received
    });
    match received {
        Ok(report) => {
            let mut reply = Reply::text(200, "");
            reply.content_type = format.encoding.content_type().into();
            reply.body = otlp::receive::response_body(format.encoding, &report);
            if report.rejected_points() > 0 {
                let reason = report.first_problem.clone().unwrap_or_default();
                log_rejected_write(app, 200, &format!("OTLP partial success: {reason}"));
            }
            app.telemetry.record_report(&report.store, now_ms);
            app.telemetry
                .record_otlp(format.encoding.as_str(), 200, Some(&report));
            reply
        }
        Err(rejection) => refuse_otlp(app, Some(format.encoding), rejection),
    }
}

/// Answers, logs (rate-limited) and counts an OTLP request refused as a whole: a
/// `google.rpc.Status` in the request's encoding, or one line of text when that is unknown.
fn refuse_otlp(app: &App, encoding: Option<Encoding>, rejection: Rejection) -> Reply {
    let mut reply = Reply::text(rejection.status, &rejection.reason);
    if let Some(encoding) = encoding {
        reply.content_type = encoding.content_type().into();
        reply.body = otlp::receive::error_body(encoding, &rejection.reason);
    }
    log_rejected_write(app, rejection.status, &rejection.reason);
    let label = encoding.map_or("unknown", Encoding::as_str);
    app.telemetry.record_otlp(label, rejection.status, None);
    reply
}

/// Answers, logs (rate-limited) and counts a write refused as a whole.
fn refuse_write(app: &App, started: Instant, rejection: Rejection, body_bytes: usize) -> Reply {
    let reply = Reply::text(rejection.status, &rejection.reason);
    log_rejected_write(app, reply.status, &rejection.reason);
    app.telemetry
        .record_write(reply.status, started.elapsed(), body_bytes);
    reply
}

fn log_rejected_write(app: &App, status: u16, reason: &str) {
    if let Some(held_back) = app.rejected_write_log.admit(Instant::now()) {
        log::warn(
            "write request rejected",
            &[
                ("code", &status),
                ("reason", &reason.trim_end()),
                ("similar_lines_held_back", &held_back),
            ],
        );
    }
}

/// The one-line reason in a text answer's body.
fn reason_of(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).trim_end().to_owned()
}

thread_local! {
    /// What a worker reuses from one write request to the next, so that steady-state ingest
    /// allocates nothing for the decompressed request or its index.
    static WRITE_BATCH: std::cell::RefCell<WriteBatch> = std::cell::RefCell::default();
    /// The same for OTLP requests.
    static OTLP_SPARE: std::cell::RefCell<otlp::receive::Spare> = std::cell::RefCell::default();
}

/// Decodes and stores one write request body; gives the answer and what was stored.
fn receive(app: &App, body: &[u8], protocol: Protocol) -> Result<(Reply, Points), Rejection> {
    let now_ms = unix_now_ms();
    let report = WRITE_BATCH.with_borrow_mut(|batch| {
        let decoded = decode(body, protocol, app.settings.max_decoded_bytes, batch);
        let rules = &app.settings.write_rules;
        let report = decoded.map(|()| ingest(&app.store, batch, rules, now_ms, app.store.tick()));
        // Gives back the memory an unusually large request made this worker hold.
        batch.shrink();
        report
    })?;
    app.telemetry.record_report(&report, now_ms);
    let reply = if report.is_clean() {
        Reply::empty(204)
    } else {
        Reply::text(400, &report.summary())
    };
    Ok((reply, report.written))
}

/// Answers a scrape with the snapshot to render: the connection renders it as it writes (see
/// [`write_page`]), so a scrape holds references to the series, not a copy of the page.
fn scrape(app: &App, head: &Head) -> Reply {
    let started = Instant::now();
    let selectors = head.query_values("match[]");
    let selection = match Selection::parse(selectors.iter().map(String::as_str)) {
        Ok(selection) => selection,
        Err(reason) => {
            app.telemetry.record_bad_selector();
            return Reply::text(400, &reason);
        }
    };
    let negotiated = negotiate(head.header("Accept"));
    let codec = negotiate_coding(head.header("Accept-Encoding"));
    let mut headers = Vec::new();
    if let Some(codec) = codec {
        headers.push(("Content-Encoding", codec.name().into()));
    }
    headers.push(("Vary", "Accept, Accept-Encoding".into()));
    let mut snapshot = app.store.snapshot();
    if !selection.is_empty() {
        snapshot.select(|series| selection.selects(series));
    }
    Reply {
        status: 200,
        content_type: negotiated.content_type().into(),
        headers,
        body: Vec::new(),
        page: Some(Box::new(Page {
            negotiated,
            snapshot,
            expose_timestamps: app.settings.expose_timestamps,
            codec,
            started,
        })),
    }
}

/// Renders `page` into `out` as it goes (compressed when the scraper takes gzip or zstd, in
/// chunks that `offload` runs the compression of: see [`crate::web::compress`]), and counts
/// the scrape.
/// `out` is a trait object so that the renderer is compiled once, not once per transport: the
/// static binary has a size budget.
pub fn write_page(
    app: &App,
    page: Page,
    out: &mut dyn Write,
    offload: &dyn Fn(Task),
) -> std::io::Result<()> {
    let mut block_bytes = std::mem::take(&mut *lock(&app.spare_block_bytes));
    let mut render = |out: &mut dyn Write| {
        render_to(
            &page.snapshot,
            page.negotiated,
            page.expose_timestamps,
            &mut block_bytes,
            out,
        )
        .map(|(_, left_out)| app.telemetry.record_left_off_page(left_out))
    };
    let written = if let Some(codec) = page.codec {
        let mut compressor = ChunkedCompressor::new(codec, out, offload);
        render(&mut compressor).and_then(|()| compressor.finish())
    } else {
        render(out)
    };
    *lock(&app.spare_block_bytes) = block_bytes;
    *lock(&app.scraped) = (page.snapshot.series.len(), app.store.tuple_count());
    app.store.recycle(page.snapshot);
    app.telemetry.record_scrape(page.started.elapsed());
    written
}

/// The exporter's own metrics, in the format the scraper asks for, as `/metrics` is.
fn exporter_metrics(app: &App, head: &Head) -> Reply {
    let gauges = Gauges::of(&app.store, app.settings.ttl);
    let snapshot = app.telemetry.snapshot(&gauges, process::read().as_ref());
    let negotiated = negotiate(head.header("Accept"));
    Reply {
        status: 200,
        content_type: negotiated.content_type().into(),
        headers: vec![("Vary", "Accept, Accept-Encoding".into())],
        body: render(&snapshot, negotiated, false),
        page: None,
    }
}

/// Where Prometheus serves its TSDB status, whose cardinality tables this serves in its shape.
pub const TSDB_STATUS_PATH: &str = "/api/v1/status/tsdb";

/// `GET /api/v1/status/tsdb`: which metrics, label names and pairs hold the most series
/// ([`crate::ops::cardinality`]), `?limit=` rows each; a bad limit is answered as Prometheus
/// answers it, 400 with `bad_data`.
fn tsdb_status(app: &App, head: &Head) -> Reply {
    let limit = head.query_values("limit");
    let limit = match cardinality::parse_limit(limit.first().map(String::as_str)) {
        Ok(limit) => limit,
        Err(error) => {
            let body =
                serde_json::json!({"status": "error", "errorType": "bad_data", "error": error});
            return Reply::json(400, &body);
        }
    };
    let snapshot = app.store.snapshot();
    let tables = Cardinality::of(&snapshot, limit);
    app.store.recycle(snapshot);
    Reply::json(200, &tables.to_json())
}

fn landing(app: &App) -> Reply {
    let snapshot = app.store.snapshot();
    let facts = LandingFacts {
        series: snapshot.series.len(),
        series_limit: app.store.max_series(),
        memory_limit: app.telemetry.memory_limit(),
        resident_bytes: process::read().map(|stats| stats.resident_bytes as u64),
        families: crate::expose::groups::family_count(&snapshot),
        last_write_ms: app.telemetry.last_write_ms(),
        now_ms: unix_now_ms(),
        telemetry_path: &app.settings.telemetry_path,
        exporter_telemetry_path: &app.settings.exporter_telemetry_path,
        write_paths: &WRITE_PATHS,
        flags_in_effect: &app.settings.flags_in_effect,
        cardinality: &Cardinality::of(&snapshot, cardinality::DEFAULT_LIMIT),
    };
    let body = landing_page(&facts).into_bytes();
    app.store.recycle(snapshot);
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8".into(),
        headers: Vec::new(),
        body,
        page: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::names::NameRules;

    fn app() -> App {
        let settings = Settings {
            telemetry_path: "/metrics".into(),
            exporter_telemetry_path: "/metrics/exporter".into(),
            expose_timestamps: false,
            max_bytes: 1 << 20,
            max_decoded_bytes: 1 << 20,
            write_rules: WriteRules {
                names: NameRules::Utf8,
                max_histogram_buckets: 4096,
            },
            otlp_translation: Translation::default(),
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
        let page = String::from_utf8(render(
            &app.telemetry
                .snapshot(&Gauges::of(&app.store, app.settings.ttl), None),
            Negotiated::default(),
            false,
        ))
        .unwrap();
        assert!(
            page.contains("k8s_exporter_request_handler_panics_total 1\n"),
            "{page}"
        );
        let reply = respond_catching_panics(&app, || Reply::text(200, "fine"));
        assert_eq!(reply.status, 200, "the next request is served as usual");
    }

    #[test]
    fn error_replies_are_one_line() {
        let reply = Reply::text(400, "first\nsecond");
        assert_eq!(reply.body, b"first second\n");
    }
}
