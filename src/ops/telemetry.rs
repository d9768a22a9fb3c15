//! The exporter's own metrics, served apart from bridged series (on `/metrics/exporter`) so
//! that no pushed family can ever collide with one of ours.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::base::locks::lock;
use crate::expose::lines::write_float;
use crate::ops::process::ProcessStats;
use crate::otlp::translate::{OtlpReport, PointProblem, POINT_KINDS};
use crate::store::metadata::{Metadata, MetricKind};
use crate::store::{Sample, Snapshot, Store};
use crate::write::ingest::{DropReason, Report};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("K8S_EXPORTER_REVISION");
pub const RUST_VERSION: &str = env!("K8S_EXPORTER_RUST_VERSION");
/// The operating system the binary was built for, as Go's `GOOS` names it (Prometheus's
/// `prometheus_build_info` carries `goos`).
pub const OS: &str = std::env::consts::OS;
/// The architecture the binary was built for, as Go's `GOARCH` names it (`amd64`, `arm64`): the
/// names of Prometheus's `goarch` label, of our release archives and of Docker's `TARGETARCH`.
pub const ARCH: &str = match std::env::consts::ARCH.as_bytes() {
    b"x86_64" => "amd64",
    b"aarch64" => "arm64",
    _ => std::env::consts::ARCH,
};

/// Bucket bounds in seconds for request and scrape durations: a write of 2000 series takes
/// about a millisecond, a scrape of a million series about a second.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram that can be observed from many threads without a lock.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_bits: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl Histogram {
    pub fn observe(&self, value: f64) {
        if let Some(bucket) = DURATION_BUCKETS.iter().position(|bound| value <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn write(&self, out: &mut OwnMetrics, name: &str, help: &str) {
        out.header(name, help, "histogram");
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let mut le = Vec::new();
            write_float(&mut le, *bound);
            let le = String::from_utf8(le).unwrap_or_default();
            out.sample(&bucket_name, [("le", le.as_str())], cumulative as f64);
        }
        let count = self.count.load(Ordering::Relaxed) as f64;
        out.sample(&bucket_name, [("le", "+Inf")], count);
        let sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        out.sample(&format!("{name}_sum"), [], sum);
        out.sample(&format!("{name}_count"), [], count);
    }
}

/// Why the HTTP layer ended a connection or refused one before any handler saw a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// A request line, header or chunked framing that breaks HTTP/1.1 or its limits.
    BadRequest,
    /// A request not fully received within `--web.read-timeout` of its first byte.
    ReadTimeout,
    /// An answer not fully taken by the client within `--web.write-timeout`.
    WriteTimeout,
    /// A connection refused because `--web.max-connections` were open.
    ConnectionLimit,
    /// A request refused (503) because `--web.max-bytes-in-flight` were held.
    BytesInFlightLimit,
    /// `accept()` failed, for example for lack of file descriptors.
    AcceptFailed,
    /// A TLS handshake failed or did not finish in time, or the client spoke plain HTTP.
    TlsHandshake,
    /// A request without valid basic-auth credentials (answered 401).
    Unauthorized,
    /// A request beyond the web config file's `rate_limit` (answered 429).
    RateLimited,
}

impl HttpError {
    pub const ALL: [HttpError; 9] = [
        HttpError::BadRequest,
        HttpError::ReadTimeout,
        HttpError::WriteTimeout,
        HttpError::ConnectionLimit,
        HttpError::BytesInFlightLimit,
        HttpError::AcceptFailed,
        HttpError::TlsHandshake,
        HttpError::Unauthorized,
        HttpError::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpError::BadRequest => "bad_request",
            HttpError::ReadTimeout => "read_timeout",
            HttpError::WriteTimeout => "write_timeout",
            HttpError::ConnectionLimit => "connection_limit",
            HttpError::BytesInFlightLimit => "bytes_in_flight_limit",
            HttpError::AcceptFailed => "accept_failed",
            HttpError::TlsHandshake => "tls_handshake",
            HttpError::Unauthorized => "unauthorized",
            HttpError::RateLimited => "rate_limited",
        }
    }
}

/// Open connections and HTTP-level failures, kept by the connection layer.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now; the connection layer admits new ones against its limit with it.
    pub open: AtomicUsize,
    pub limit: AtomicUsize,
    errors: [AtomicU64; HttpError::ALL.len()],
}

impl ConnectionStats {
    pub fn record(&self, error: HttpError) {
        self.errors[error as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut OwnMetrics) {
        let gauge = |out: &mut OwnMetrics, name: &str, help: &str, value: &AtomicUsize| {
            out.header(name, help, "gauge");
            out.sample(name, [], value.load(Ordering::Relaxed) as f64);
        };
        gauge(
            out,
            "k8s_exporter_http_connections",
            "HTTP connections open.",
            &self.open,
        );
        gauge(
            out,
            "k8s_exporter_http_connections_limit",
            "Most HTTP connections open at once (--web.max-connections).",
            &self.limit,
        );
        let name = "k8s_exporter_http_errors_total";
        out.header(
            name,
            "Connections ended or refused by the HTTP layer before a handler answered, by reason.",
            "counter",
        );
        for (error, count) in HttpError::ALL.iter().zip(&self.errors) {
            let value = count.load(Ordering::Relaxed) as f64;
            out.sample(name, [("reason", error.as_str())], value);
        }
    }
}

/// Counters and histograms updated by the request handlers.
#[derive(Debug)]
pub struct Telemetry {
    pub connections: ConnectionStats,
    /// `--memory.limit` in force, in bytes; 0 for none.
    memory_limit: AtomicU64,
    /// When the web config's TLS certificates expire, by which certificate, in Unix seconds.
    certificate_expiries: Mutex<Vec<(&'static str, i64)>>,
    write_requests: Mutex<BTreeMap<u16, u64>>,
    write_duration: Histogram,
    write_bytes: AtomicU64,
    samples_received: AtomicU64,
    histograms_received: AtomicU64,
    exemplars_received: AtomicU64,
    samples_dropped: [AtomicU64; DropReason::ALL.len()],
    metadata_received: AtomicU64,
    metadata_dropped: AtomicU64,
    removed_expired: AtomicU64,
    removed_stale: AtomicU64,
    last_write_ms: AtomicI64,
    scrapes: AtomicU64,
    left_off_page: AtomicU64,
    bad_selectors: AtomicU64,
    scrape_duration: Histogram,
    handler_panics: AtomicU64,
    /// Reloads of the web config file after a change: succeeded, failed.
    web_config_reloads: [AtomicU64; 2],
    web_config_last_reload_failed: AtomicBool,
    otlp: OtlpStats,
}

/// What the OTLP endpoints received and refused.
#[derive(Debug)]
struct OtlpStats {
    /// Answered requests by encoding (`protobuf`, `json`) and status code.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Data points received, by [`POINT_KINDS`].
    points_received: [AtomicU64; POINT_KINDS.len()],
    /// Data points refused, by reason.
    points_rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for OtlpStats {
    /// The answers and refusals a sender can get are listed from the start, so rates work
    /// from zero.
    fn default() -> Self {
        let requests = [
            ("protobuf", 200),
            ("protobuf", 400),
            ("json", 200),
            ("json", 400),
        ]
        .into_iter()
        .map(|answer| (answer, 0))
        .collect();
        let reasons = [PointProblem::InvalidTemporality]
            .into_iter()
            .chain(
                DropReason::ALL
                    .into_iter()
                    .filter(|reason| reason.is_client_error())
                    .map(PointProblem::Store),
            )
            .map(|problem| (problem.as_str(), 0))
            .collect();
        OtlpStats {
            requests: Mutex::new(requests),
            points_received: Default::default(),
            points_rejected: Mutex::new(reasons),
        }
    }
}

impl OtlpStats {
    fn write(&self, out: &mut OwnMetrics) {
        let name = "k8s_exporter_otlp_requests_total";
        out.header(
            name,
            "OTLP export requests answered, by body encoding and HTTP status code.",
            "counter",
        );
        for ((encoding, code), count) in lock(&self.requests).iter() {
            let code = code.to_string();
            out.sample(
                name,
                [("code", code.as_str()), ("encoding", *encoding)],
                *count as f64,
            );
        }
        let name = "k8s_exporter_otlp_data_points_received_total";
        out.header(
            name,
            "OTLP data points received, usable or not, by type.",
            "counter",
        );
        for (kind, count) in POINT_KINDS.iter().zip(&self.points_received) {
            out.sample(
                name,
                [("type", *kind)],
                count.load(Ordering::Relaxed) as f64,
            );
        }
        let name = "k8s_exporter_otlp_data_points_rejected_total";
        out.header(name, "OTLP data points not stored, in whole or in part, by the first reason (the partial_success answered).", "counter");
        for (reason, count) in lock(&self.points_rejected).iter() {
            out.sample(name, [("reason", *reason)], *count as f64);
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        // The answers a sender can get are listed from the start, so rates work from zero.
        let codes = [204, 400, 413, 415, 500]
            .into_iter()
            .map(|code| (code, 0))
            .collect();
        Telemetry {
            connections: ConnectionStats::default(),
            write_requests: Mutex::new(codes),
            write_duration: Histogram::default(),
            write_bytes: AtomicU64::new(0),
            samples_received: AtomicU64::new(0),
            histograms_received: AtomicU64::new(0),
            exemplars_received: AtomicU64::new(0),
            samples_dropped: Default::default(),
            metadata_received: AtomicU64::new(0),
            metadata_dropped: AtomicU64::new(0),
            removed_expired: AtomicU64::new(0),
            removed_stale: AtomicU64::new(0),
            last_write_ms: AtomicI64::new(0),
            scrapes: AtomicU64::new(0),
            left_off_page: AtomicU64::new(0),
            bad_selectors: AtomicU64::new(0),
            scrape_duration: Histogram::default(),
            handler_panics: AtomicU64::new(0),
            web_config_reloads: Default::default(),
            web_config_last_reload_failed: AtomicBool::new(false),
            otlp: OtlpStats::default(),
            memory_limit: AtomicU64::new(0),
            certificate_expiries: Mutex::default(),
        }
    }
}

/// Store figures and settings shown beside the counters.
pub struct Gauges {
    pub series: usize,
    pub series_limit: usize,
    pub ttl: Duration,
}

impl Gauges {
    pub fn of(store: &Store, ttl: Duration) -> Gauges {
        Gauges {
            series: store.series_count(),
            series_limit: store.max_series(),
            ttl,
        }
    }
}

impl Telemetry {
    /// The expiry times of the TLS certificates in force, at start and after each reload.
    pub fn set_certificate_expiries(&self, expiries: &[(&'static str, i64)]) {
        *lock(&self.certificate_expiries) = expiries.to_vec();
    }

    pub fn set_memory_limit(&self, limit: Option<u64>) {
        self.memory_limit
            .store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// The memory limit in force, if any.
    pub fn memory_limit(&self) -> Option<u64> {
        Some(self.memory_limit.load(Ordering::Relaxed)).filter(|&bytes| bytes > 0)
    }

    /// Counts one answered write request of `body_bytes` compressed bytes.
    pub fn record_write(&self, status: u16, elapsed: Duration, body_bytes: usize) {
        *lock(&self.write_requests).entry(status).or_insert(0) += 1;
        self.write_duration.observe(elapsed.as_secs_f64());
        self.write_bytes
            .fetch_add(body_bytes as u64, Ordering::Relaxed);
    }

    /// Counts one answered OTLP request, and its data points when it was read (what their
    /// series did in the store is counted by [`Telemetry::record_report`]).
    pub fn record_otlp(&self, encoding: &'static str, status: u16, report: Option<&OtlpReport>) {
        *lock(&self.otlp.requests)
            .entry((encoding, status))
            .or_insert(0) += 1;
        let Some(report) = report else {
            return;
        };
        for (counter, received) in self.otlp.points_received.iter().zip(report.received) {
            counter.fetch_add(received, Ordering::Relaxed);
        }
        let mut rejected = lock(&self.otlp.points_rejected);
        for (problem, count) in &report.rejected {
            *rejected.entry(problem.as_str()).or_insert(0) += count;
        }
    }

    /// Counts what an ingested request held and did.
    pub fn record_report(&self, report: &Report, now_ms: i64) {
        let received = report.received;
        self.samples_received
            .fetch_add(received.samples, Ordering::Relaxed);
        self.histograms_received
            .fetch_add(received.histograms, Ordering::Relaxed);
        self.exemplars_received
            .fetch_add(received.exemplars, Ordering::Relaxed);
        for (counter, dropped) in self.samples_dropped.iter().zip(report.dropped) {
            counter.fetch_add(dropped, Ordering::Relaxed);
        }
        self.metadata_received
            .fetch_add(report.metadata_received, Ordering::Relaxed);
        self.metadata_dropped
            .fetch_add(report.metadata_dropped, Ordering::Relaxed);
        self.removed_stale
            .fetch_add(report.removed_by_stale_marker, Ordering::Relaxed);
        self.last_write_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Counts series a scrape left off its page: their escaped names collide with another's.
    pub fn record_left_off_page(&self, series: u64) {
        self.left_off_page.fetch_add(series, Ordering::Relaxed);
    }

    /// Counts a reload of the web config file after a change, and whether it took.
    pub fn record_web_config_reload(&self, succeeded: bool) {
        self.web_config_reloads[usize::from(!succeeded)].fetch_add(1, Ordering::Relaxed);
        self.web_config_last_reload_failed
            .store(!succeeded, Ordering::Relaxed);
    }

    /// Counts a scrape refused because a `match[]` selector did not parse.
    pub fn record_bad_selector(&self) {
        self.bad_selectors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_expired(&self, series: usize) {
        self.removed_expired
            .fetch_add(series as u64, Ordering::Relaxed);
    }

    pub fn record_scrape(&self, elapsed: Duration) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        self.scrape_duration.observe(elapsed.as_secs_f64());
    }

    pub fn record_panic(&self) {
        self.handler_panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Unix time in milliseconds of the last write with at least one usable part, 0 if none.
    pub fn last_write_ms(&self) -> i64 {
        self.last_write_ms.load(Ordering::Relaxed)
    }

    /// The `/metrics/exporter` page's series, to be rendered in the format a scraper asks for.
    pub fn snapshot(&self, gauges: &Gauges, process: Option<&ProcessStats>) -> Snapshot {
        let mut out = OwnMetrics {
            store: Store::new(OWN_SERIES_LIMIT),
        };
        let counter = |out: &mut OwnMetrics, name: &str, help: &str, value: &AtomicU64| {
            out.header(name, help, "counter");
            out.sample(name, [], value.load(Ordering::Relaxed) as f64);
        };
        let gauge = |out: &mut OwnMetrics, name: &str, help: &str, value: f64| {
            out.header(name, help, "gauge");
            out.sample(name, [], value);
        };

        out.header("k8s_exporter_build_info", "A metric with a constant '1' value labeled by version, revision, the Rust version, and the OS and architecture it was built with.", "gauge");
        out.sample(
            "k8s_exporter_build_info",
            [
                ("arch", ARCH),
                ("os", OS),
                ("revision", REVISION),
                ("rustversion", RUST_VERSION),
                ("version", VERSION),
            ],
            1.0,
        );
        self.connections.write(&mut out);
        self.otlp.write(&mut out);
        counter(
            &mut out,
            "k8s_exporter_exemplars_received_total",
            "Exemplars received in write requests, usable or not.",
            &self.exemplars_received,
        );
        let last_write = self.last_write_ms() as f64 / 1000.0;
        gauge(&mut out, "k8s_exporter_last_write_timestamp_seconds", "Unix time of the last write request that stored or applied anything, 0 before the first.", last_write);
        counter(
            &mut out,
            "k8s_exporter_metadata_dropped_total",
            "Metadata entries refused: invalid family name or invalid UTF-8.",
            &self.metadata_dropped,
        );
        counter(
            &mut out,
            "k8s_exporter_metadata_received_total",
            "Metadata entries received and stored.",
            &self.metadata_received,
        );
        counter(
            &mut out,
            "k8s_exporter_native_histograms_received_total",
            "Native histogram samples received in write requests, usable or not.",
            &self.histograms_received,
        );
        counter(
            &mut out,
            "k8s_exporter_request_handler_panics_total",
            "Request handlers that panicked; each was answered with 500.",
            &self.handler_panics,
        );

        out.header(
            "k8s_exporter_samples_dropped_total",
            "Samples, native histograms and exemplars received but not stored, by reason.",
            "counter",
        );
        for (reason, count) in DropReason::ALL.iter().zip(&self.samples_dropped) {
            let value = count.load(Ordering::Relaxed) as f64;
            out.sample(
                "k8s_exporter_samples_dropped_total",
                [("reason", reason.as_str())],
                value,
            );
        }
        counter(
            &mut out,
            "k8s_exporter_samples_received_total",
            "Samples received in write requests, usable or not.",
            &self.samples_received,
        );
        self.scrape_duration.write(
            &mut out,
            "k8s_exporter_scrape_duration_seconds",
            "Time taken to render and send the bridged series page.",
        );
        counter(
            &mut out,
            "k8s_exporter_scrape_series_left_out_total",
            "Series left off a scraped page because their names, as escaped for the scraper, are another series' (that one is shown).",
            &self.left_off_page,
        );
        counter(
            &mut out,
            "k8s_exporter_scrape_selector_errors_total",
            "Scrapes refused with 400 because a match[] selector did not parse or selected every series.",
            &self.bad_selectors,
        );
        let failed = self.web_config_last_reload_failed.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "k8s_exporter_web_config_last_reload_successful",
            "Whether the last reload of --web.config.file took (1), or failed and the configuration before it is still in force (0).",
            if failed { 0.0 } else { 1.0 },
        );
        let name = "k8s_exporter_web_config_reloads_total";
        out.header(
            name,
            "Reloads of --web.config.file after it or a file it names changed, by result.",
            "counter",
        );
        for (result, count) in ["success", "failure"].iter().zip(&self.web_config_reloads) {
            let value = count.load(Ordering::Relaxed) as f64;
            out.sample(name, [("result", *result)], value);
        }
        counter(
            &mut out,
            "k8s_exporter_scrapes_total",
            "Scrapes of the bridged series page.",
            &self.scrapes,
        );
        gauge(
            &mut out,
            "k8s_exporter_series",
            "Series currently held.",
            gauges.series as f64,
        );
        gauge(
            &mut out,
            "k8s_exporter_series_limit",
            "Most series held: --series.max, given or derived from the memory limit.",
            gauges.series_limit as f64,
        );
        let expiries = lock(&self.certificate_expiries).clone();
        if !expiries.is_empty() {
            let name = "k8s_exporter_tls_certificate_expiry_timestamp_seconds";
            out.header(name, "When a TLS certificate of --web.config.file expires (its notAfter), by which: server, or the earliest of client_ca; updated on every reload.", "gauge");
            for (certificate, time) in expiries {
                out.sample(name, [("certificate", certificate)], time as f64);
            }
        }
        gauge(
            &mut out,
            "k8s_exporter_memory_limit_bytes",
            "The memory limit in force (--memory.limit, by default the cgroup's); 0 for none. New series are refused while resident memory is near it.",
            self.memory_limit.load(Ordering::Relaxed) as f64,
        );

        out.header(
            "k8s_exporter_series_removed_total",
            "Series removed, by reason: not written within the TTL, or ended by a stale marker.",
            "counter",
        );
        for (reason, count) in [
            ("expired", &self.removed_expired),
            ("stale_marker", &self.removed_stale),
        ] {
            let value = count.load(Ordering::Relaxed) as f64;
            out.sample(
                "k8s_exporter_series_removed_total",
                [("reason", reason)],
                value,
            );
        }
        gauge(
            &mut out,
            "k8s_exporter_series_ttl_seconds",
            "Series not written for this long are removed (--series.ttl); 0 means never.",
            gauges.ttl.as_secs_f64(),
        );
        counter(
            &mut out,
            "k8s_exporter_write_request_bytes_total",
            "Compressed bytes of write request bodies read.",
            &self.write_bytes,
        );
        self.write_duration.write(
            &mut out,
            "k8s_exporter_write_request_duration_seconds",
            "Time taken to read, decode and store a write request.",
        );

        out.header(
            "k8s_exporter_write_requests_total",
            "Write requests answered, by HTTP status code.",
            "counter",
        );
        for (code, count) in lock(&self.write_requests).iter() {
            out.sample(
                "k8s_exporter_write_requests_total",
                [("code", code.to_string().as_str())],
                *count as f64,
            );
        }

        if let Some(process) = process {
            write_process(&mut out, process);
        }
        out.store.snapshot()
    }
}

/// More than the exporter's own series, which are some eighty.
const OWN_SERIES_LIMIT: usize = 1000;

/// The exporter's own metrics, gathered in a store of their own so that they are shown in any
/// format exactly as the bridged series are.
pub struct OwnMetrics {
    store: Store,
}

impl OwnMetrics {
    /// A family's help and type (`counter`, `gauge` or `histogram`).
    fn header(&mut self, family: &str, help: &str, type_word: &str) {
        let kind = match type_word {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            _ => MetricKind::Unknown,
        };
        let metadata = Metadata {
            kind,
            help: help.into(),
            unit: "".into(),
        };
        self.store.set_metadata(family, metadata, 0);
    }

    fn sample<'a>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
    ) {
        let mut labels: Vec<(&str, &str)> = labels.into_iter().collect();
        labels.sort_unstable();
        let sample = Sample {
            value,
            timestamp_ms: 0,
        };
        self.store.apply_text((name, &labels), sample, 0);
    }
}

fn write_process(out: &mut OwnMetrics, process: &ProcessStats) {
    let families = [
        (
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            process.cpu_seconds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
            process.max_fds,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            process.open_fds,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            process.resident_bytes,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            process.start_time_seconds,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            process.virtual_bytes,
        ),
    ];
    for (name, help, type_word, value) in families {
        out.header(name, help, type_word);
        out.sample(name, [], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(snapshot: &Snapshot) -> String {
        let page = crate::expose::render::render(snapshot, Default::default(), false);
        String::from_utf8(page).unwrap()
    }

    fn sample_value(page: &str, series: &str) -> f64 {
        let line = page
            .lines()
            .find(|line| {
                line.rsplit_once(' ')
                    .is_some_and(|(name, _)| name == series)
            })
            .unwrap_or_else(|| panic!("{series} not on the page:\n{page}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        for value in [0.0001, 0.003, 0.003, 20.0] {
            histogram.observe(value);
        }
        let mut out = OwnMetrics {
            store: Store::new(OWN_SERIES_LIMIT),
        };
        histogram.write(&mut out, "h_seconds", "help");
        let page = text(&out.store.snapshot());
        assert_eq!(sample_value(&page, "h_seconds_bucket{le=\"0.0005\"}"), 1.0);
        assert_eq!(sample_value(&page, "h_seconds_bucket{le=\"0.0025\"}"), 1.0);
        assert_eq!(sample_value(&page, "h_seconds_bucket{le=\"0.005\"}"), 3.0);
        assert_eq!(sample_value(&page, "h_seconds_bucket{le=\"10\"}"), 3.0);
        assert_eq!(sample_value(&page, "h_seconds_bucket{le=\"+Inf\"}"), 4.0);
        assert_eq!(sample_value(&page, "h_seconds_count"), 4.0);
        assert!((sample_value(&page, "h_seconds_sum") - 20.0061).abs() < 1e-9);
    }

    #[test]
    fn reports_and_writes_are_counted() {
        let telemetry = Telemetry::default();
        let mut report = Report {
            received: crate::write::ingest::Points {
                samples: 5,
                ..Default::default()
            },
            metadata_received: 2,
            removed_by_stale_marker: 1,
            ..Default::default()
        };
        report.dropped[0] = 3;
        telemetry.record_report(&report, 1_700_000_000_500);
        telemetry.record_write(204, Duration::from_millis(2), 100);
        telemetry.record_write(400, Duration::from_millis(2), 50);
        telemetry.record_write(400, Duration::from_millis(2), 50);
        telemetry.record_expired(4);
        let gauges = Gauges {
            series: 7,
            series_limit: 10,
            ttl: Duration::from_secs(300),
        };
        let page = text(&telemetry.snapshot(&gauges, None));
        assert_eq!(
            sample_value(&page, "k8s_exporter_samples_received_total"),
            5.0
        );
        assert_eq!(
            sample_value(
                &page,
                "k8s_exporter_samples_dropped_total{reason=\"invalid_metric_name\"}"
            ),
            3.0
        );
        assert_eq!(
            sample_value(
                &page,
                "k8s_exporter_samples_dropped_total{reason=\"out_of_order\"}"
            ),
            0.0
        );
        assert_eq!(
            sample_value(&page, "k8s_exporter_write_requests_total{code=\"400\"}"),
            2.0
        );
        assert_eq!(
            sample_value(&page, "k8s_exporter_write_requests_total{code=\"415\"}"),
            0.0
        );
        assert_eq!(
            sample_value(&page, "k8s_exporter_write_request_bytes_total"),
            200.0
        );
        assert_eq!(
            sample_value(
                &page,
                "k8s_exporter_series_removed_total{reason=\"stale_marker\"}"
            ),
            1.0
        );
        assert_eq!(
            sample_value(
                &page,
                "k8s_exporter_series_removed_total{reason=\"expired\"}"
            ),
            4.0
        );
        assert_eq!(
            sample_value(&page, "k8s_exporter_last_write_timestamp_seconds"),
            1_700_000_000.5
        );
        assert_eq!(sample_value(&page, "k8s_exporter_series"), 7.0);
        assert_eq!(
            sample_value(&page, "k8s_exporter_series_ttl_seconds"),
            300.0
        );
        assert!(
            !page.contains("process_"),
            "no process metrics without /proc figures"
        );
    }
}
