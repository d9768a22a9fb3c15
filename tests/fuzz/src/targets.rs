//! The fuzz targets' bodies, shared by `cargo fuzz` (fuzz_targets/) and by the integration test
//! that replays the committed corpus and every past find on the stable toolchain.
//!
//! Both drive the real request handler ([`k8s_exporter::web::routes::handle`]) in process and then
//! check what a client would see: every answer is one of the expected ones, a stored series a
//! request did not name is untouched, and `/metrics` parses strictly and holds exactly what
//! the store holds. A panic anywhere aborts the fuzzer, even though the handler would have
//! caught it and answered 500.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::text_format::{self, sorted};
use k8s_exporter::ops::log;
use k8s_exporter::otlp::translate::Translation;
use k8s_exporter::store::{is_stale_marker, SeriesView, Store, STALE_NAN_BITS};
use k8s_exporter::web::http1::{Head, Version};
use k8s_exporter::web::routes::{handle, write_page, App, Request, Settings};
use k8s_exporter::write::ingest::WriteRules;
use k8s_exporter::write::names::NameRules;
use k8s_exporter::write::proto::{
    histogram, v2, BucketSpan, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};
use prost::Message;

/// Series a fuzzed store may hold: small, so that the series limit is reached too.
const MAX_SERIES: usize = 48;
const MAX_DECODED_BYTES: usize = 1 << 20;
const SENTINEL: &str = "fuzz_sentinel";

/// Input: one flag byte, then a request body. Flag bit 0 set: the rest is the body as sent
/// (fuzzing snappy); clear: the rest is the protobuf, snappy-compressed here (fuzzing the
/// protobuf and everything after it). Bit 1 chooses whether `/metrics` shows timestamps, bit 2
/// whether the body is sent as remote write 2.0 instead of 1.0.
pub fn write_request(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let app = app(flags & 2 != 0);
    store_sentinel(&app);

    let (body, protobuf) = if flags & 1 != 0 {
        let protobuf = snap::raw::Decoder::new().decompress_vec(rest).ok();
        (rest.to_vec(), protobuf)
    } else {
        (snappy(rest), Some(rest.to_vec()))
    };
    let v2 = flags & 4 != 0;
    let sent_at = now_ms();
    let reply = post_as(&app, &body, v2);
    assert!(
        matches!(reply.status, 204 | 400),
        "unexpected status {}",
        reply.status
    );
    assert_one_line(&reply.body);
    let says_written = |what: &str| reply.headers.iter().any(|(name, _)| name.contains(what));
    assert_eq!(
        ["Samples", "Histograms", "Exemplars"].map(says_written),
        [v2; 3],
        "the written headers come with every 2.0 answer, and only then"
    );

    let names_sentinel = protobuf
        .as_deref()
        .is_some_and(|p| p.windows(SENTINEL.len()).any(|w| w == SENTINEL.as_bytes()));
    if !names_sentinel {
        assert_sentinel_held(&app);
    }
    if reply.status == 204 {
        let protobuf = protobuf.expect("a 204 came from a snappy body");
        let decoded = if v2 {
            v2::Request::decode(protobuf.as_slice()).map(|request| as_v1(&request))
        } else {
            WriteRequest::decode(protobuf.as_slice())
        };
        match decoded {
            Ok(request) => assert_accepted_series_held(&app, &request, sent_at),
            // The one leniency the server shares with Prometheus's decoder: a ten-byte varint
            // with bits past 64 (see src/write/wire.rs).
            Err(error) => assert!(
                error.to_string().contains("invalid varint"),
                "prost refuses what the server accepted: {error}"
            ),
        }
    }
    check_pages(&app);
}

/// Input: one flag byte, then an OTLP export body. Flag bit 0 set: the body is sent as JSON,
/// clear: as protobuf; bit 1 set: it is sent gzipped (compressed here). The answer is 200 or
/// 400, in the request's encoding; a 400 changes nothing held; a series the body does not
/// name is untouched; and the pages hold exactly what the store holds.
pub fn otlp_request(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let app = app(false);
    store_sentinel(&app);
    let before = scraped(&app, "text/plain");

    let json = flags & 1 != 0;
    let content_type = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let mut headers = vec![("Content-Type", content_type)];
    let sent = if flags & 2 != 0 {
        headers.push(("Content-Encoding", "gzip"));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, body).expect("gzip into memory");
        encoder.finish().expect("gzip into memory")
    } else {
        body.to_vec()
    };
    let reply = handle(&app, &request("POST", "/v1/metrics", &headers, sent));
    assert!(
        matches!(reply.status, 200 | 400),
        "unexpected status {}",
        reply.status
    );
    assert_eq!(
        reply.content_type, content_type,
        "answered in the request's encoding"
    );
    if json {
        let answer: serde_json::Value =
            serde_json::from_slice(&reply.body).expect("a JSON answer to a JSON request");
        let key = if reply.status == 200 {
            "partialSuccess"
        } else {
            "code"
        };
        assert!(
            answer
                .as_object()
                .is_some_and(|o| o.is_empty() || o.contains_key(key)),
            "{answer}"
        );
    }
    if reply.status == 400 {
        assert_eq!(
            scraped(&app, "text/plain"),
            before,
            "a refused request changes nothing"
        );
    } else if !body
        .windows(SENTINEL.len())
        .any(|w| w == SENTINEL.as_bytes())
    {
        assert_sentinel_held(&app);
    }
    check_pages(&app);
}

/// Input: a little program that builds write requests (series with names and labels from
/// small pools or from the input, values and timestamps, native histograms valid or not,
/// metadata of every type) and sends them; then the pages are checked, OpenMetrics against
/// text for every series. Reaches the exposition's corners that random protobuf
/// seldom does: families split over `_bucket`, `_sum`, `_count` and `_total`, odd `le` and
/// `quantile` values, escapes, and metadata for names that are also series.
pub fn exposition(data: &[u8]) {
    let mut input = Input(data);
    let app = app(input.byte() & 1 != 0);
    let mut request = WriteRequest::default();
    for _ in 0..64 {
        if input.0.is_empty() {
            break;
        }
        match input.byte() % 8 {
            0..=4 => request.timeseries.push(input.series()),
            5 | 6 => request.metadata.push(input.metadata()),
            _ => send(&app, &mut request),
        }
    }
    send(&app, &mut request);
    check_pages(&app);
}

fn send(app: &App, request: &mut WriteRequest) {
    let reply = post(app, &snappy(&request.encode_to_vec()));
    assert!(
        matches!(reply.status, 204 | 400),
        "unexpected status {}",
        reply.status
    );
    assert_one_line(&reply.body);
    *request = WriteRequest::default();
}

/// Reads names, labels and numbers off the front of the fuzzer's bytes; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    fn text(&mut self) -> String {
        let len = (self.byte() % 16) as usize;
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        String::from_utf8_lossy(taken).into_owned()
    }

    fn pick(&mut self, pool: &[&str]) -> String {
        let choice = self.byte() as usize;
        match pool.get(choice % (pool.len() + 1)) {
            Some(word) => (*word).to_owned(),
            None => self.text(),
        }
    }

    /// Names that clash in every way OpenMetrics' suffixes allow, and by escaping.
    fn family_name(&mut self) -> String {
        self.pick(&[
            "x",
            "x_bucket",
            "x_sum",
            "x_count",
            "x_total",
            "x_created",
            "x_info",
            "x_total_created",
            "x_sum_bucket",
            "x.y",
            "x_y",
            "up",
            "a:b",
        ])
    }

    fn number(&mut self) -> f64 {
        match self.byte() % 8 {
            0 => f64::NAN,
            1 => f64::from_bits(STALE_NAN_BITS),
            2 => f64::INFINITY,
            3 => -0.0,
            4 => f64::from(self.byte()) / 4.0,
            _ => {
                let mut bits = [0; 8];
                bits.iter_mut().for_each(|b| *b = self.byte());
                f64::from_le_bytes(bits)
            }
        }
    }

    fn series(&mut self) -> TimeSeries {
        let mut labels = vec![("__name__".to_owned(), self.family_name())];
        for _ in 0..self.byte() % 5 {
            let name = self.pick(&["le", "quantile", "job", "instance", "_x", "__name__"]);
            let value = match name.as_str() {
                "le" | "quantile" => {
                    self.pick(&["0.5", "+Inf", "1e500", "-inf", "NaN", "+NaN", "0x1p3", ""])
                }
                _ => self.pick(&["a", "\\", "\"", "\n", "ü", "a\\nb"]),
            };
            labels.push((name, value));
        }
        if self.byte() & 1 == 0 {
            labels.reverse();
        }
        let now = now_ms();
        let samples: Vec<(f64, i64)> = (0..=self.byte() % 2)
            .map(|_| {
                let timestamp = match self.byte() % 4 {
                    0 => now,
                    1 => now - i64::from(self.byte()) * 1000,
                    2 => now + 3_600_000,
                    _ => -i64::from(self.byte()),
                };
                (self.number(), timestamp)
            })
            .collect();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut series = TimeSeries::from_pairs(&pairs, &samples);
        if self.byte().is_multiple_of(4) {
            series.histograms.push(self.histogram(now));
        }
        series
    }

    /// A native histogram, valid or not: any schema near the valid ones, spans and counts that
    /// may disagree, integer deltas or float counts, custom values in any order.
    fn histogram(&mut self, now: i64) -> Histogram {
        let schema = [-53, -5, -4, 0, 1, 3, 8, 9][usize::from(self.byte() % 8)];
        let spans = |input: &mut Self| -> Vec<BucketSpan> {
            (0..input.byte() % 3)
                .map(|_| BucketSpan {
                    offset: i32::from(input.byte() as i8),
                    length: u32::from(input.byte() % 5),
                })
                .collect()
        };
        let positive_spans = spans(self);
        let negative_spans = spans(self);
        let buckets = usize::from(self.byte() % 8);
        let float = self.byte() & 1 == 0;
        let mut histogram = Histogram {
            sum: self.number(),
            schema,
            zero_threshold: f64::from(self.byte()) / 256.0,
            positive_spans,
            negative_spans,
            timestamp: now - i64::from(self.byte()) * 1000,
            custom_values: (0..self.byte() % 4).map(|_| self.number()).collect(),
            ..Default::default()
        };
        if float {
            histogram.count = Some(histogram::Count::CountFloat(self.number()));
            histogram.zero_count = Some(histogram::ZeroCount::ZeroCountFloat(self.number()));
            histogram.positive_counts = (0..buckets).map(|_| self.number()).collect();
        } else {
            histogram.count = Some(histogram::Count::CountInt(u64::from(self.byte())));
            histogram.zero_count = Some(histogram::ZeroCount::ZeroCountInt(u64::from(
                self.byte() % 4,
            )));
            histogram.positive_deltas =
                (0..buckets).map(|_| i64::from(self.byte() as i8)).collect();
        }
        histogram
    }

    fn metadata(&mut self) -> MetricMetadata {
        MetricMetadata {
            r#type: i32::from(self.byte() % 9),
            metric_family_name: self.family_name().into_bytes().into(),
            help: self
                .pick(&["", "a\\b", "line\nbreak", "# TYPE x gauge"])
                .into_bytes()
                .into(),
            unit: self.text().into_bytes().into(),
        }
    }
}

/// The value of the series every fuzzed request is sent beside.
const SENTINEL_VALUE: f64 = 42.5;

/// Stores the sentinel series, which a request that does not name it must leave as it is.
fn store_sentinel(app: &App) {
    let sentinel = WriteRequest {
        timeseries: vec![TimeSeries::from_pairs(
            &[("__name__", SENTINEL), ("job", "fuzz")],
            &[(SENTINEL_VALUE, now_ms())],
        )],
        ..Default::default()
    };
    assert_eq!(post(app, &snappy(&sentinel.encode_to_vec())).status, 204);
}

fn assert_sentinel_held(app: &App) {
    let held = held_series(app);
    let sentinel = held
        .iter()
        .find(|s| s.name == SENTINEL)
        .expect("the sentinel series survives a request that does not name it");
    assert_eq!(sentinel.value, SENTINEL_VALUE);
}

fn app(expose_timestamps: bool) -> App {
    // Refused writes are logged at warn; a fuzzer refuses thousands a second.
    log::init(log::Level::Error, log::Format::Logfmt);
    let settings = Settings {
        telemetry_path: "/metrics".into(),
        exporter_telemetry_path: "/metrics/exporter".into(),
        expose_timestamps,
        max_bytes: MAX_DECODED_BYTES,
        max_decoded_bytes: MAX_DECODED_BYTES,
        write_rules: WriteRules {
            names: NameRules::Utf8,
            max_histogram_buckets: 64,
        },
        otlp_translation: Translation::default(),
        ttl: Duration::from_secs(300),
        flags_in_effect: Vec::new(),
    };
    App::new(Arc::new(Store::new(MAX_SERIES)), settings)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .expect("snappy compresses any input")
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request {
    Request {
        head: Head {
            method: method.into(),
            target: path.into(),
            version: Version::Http11,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        },
        body,
    }
}

fn post(app: &App, body: &[u8]) -> k8s_exporter::web::routes::Reply {
    post_as(app, body, false)
}

/// POSTs `body` as remote write 1.0, or as 2.0 when `v2`.
fn post_as(app: &App, body: &[u8], v2: bool) -> k8s_exporter::web::routes::Reply {
    let (content_type, version) = if v2 {
        (
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "2.0.0",
        )
    } else {
        ("application/x-protobuf", "0.1.0")
    };
    let headers = [
        ("Content-Encoding", "snappy"),
        ("Content-Type", content_type),
        ("X-Prometheus-Remote-Write-Version", version),
    ];
    handle(app, &request("POST", "/write", &headers, body.to_vec()))
}

/// A 2.0 request the server accepted, as the 1.0 request with the same series: its label
/// references resolved through its symbols (a 204 means every one resolved).
fn as_v1(request: &v2::Request) -> WriteRequest {
    let symbol = |reference: &u32| {
        request
            .symbols
            .get(*reference as usize)
            .expect("an accepted request's references resolve")
            .clone()
    };
    let timeseries = request
        .timeseries
        .iter()
        .map(|series| TimeSeries {
            labels: series
                .labels_refs
                .chunks(2)
                .map(|pair| Label {
                    name: symbol(&pair[0]),
                    value: symbol(&pair[1]),
                })
                .collect(),
            samples: series
                .samples
                .iter()
                .map(|sample| Sample {
                    value: sample.value,
                    timestamp: sample.timestamp,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    WriteRequest {
        timeseries,
        ..Default::default()
    }
}

fn assert_one_line(body: &[u8]) {
    let newlines = body.iter().filter(|b| **b == b'\n').count();
    assert!(
        body.is_empty() || (newlines == 1 && body.ends_with(b"\n")),
        "answer is not one line: {:?}",
        String::from_utf8_lossy(body)
    );
}

/// `/metrics` as the scraper asking with `accept` gets it.
fn scraped(app: &App, accept: &str) -> Vec<u8> {
    let reply = handle(
        app,
        &request("GET", "/metrics", &[("Accept", accept)], Vec::new()),
    );
    assert_eq!(reply.status, 200);
    let page = reply.page.expect("/metrics is rendered as it is written");
    let mut body = Vec::new();
    write_page(app, *page, &mut body, &|task| task()).expect("a Vec takes any page");
    body
}

/// The pages of the other formats and escaping schemes are well formed too: the text ones
/// (whose names are legacy once escaped) parse strictly, and the protobuf one is a sequence
/// of length-delimited messages of well-formed fields. OpenMetrics pages end with `# EOF`.
fn check_other_formats(app: &App) {
    for accept in [
        "text/plain;version=0.0.4;escaping=dots",
        "text/plain;version=1.0.0;escaping=values",
        "text/plain;version=1.0.0;escaping=underscores",
    ] {
        let body = scraped(app, accept);
        if let Err(problem) = text_format::parse(&body) {
            panic!("{accept}: {problem}\n{}", String::from_utf8_lossy(&body));
        }
    }
    for (escaping, text_accept) in [
        (
            "allow-utf-8",
            "text/plain;version=1.0.0;escaping=allow-utf-8",
        ),
        ("underscores", "text/plain;version=0.0.4"),
    ] {
        let accept = format!("application/openmetrics-text;version=1.0.0;escaping={escaping}");
        let body = scraped(app, &accept);
        assert!(body.ends_with(b"# EOF\n"), "{accept}");
        let page = std::str::from_utf8(&body).expect("OpenMetrics is UTF-8");
        let text = String::from_utf8(scraped(app, text_accept)).expect("text is UTF-8");
        let (openmetrics_lines, text_lines) = (sample_lines(page), sample_lines(&text));
        // Every series of the text page, whatever its family; OpenMetrics adds only `_created`.
        for line in &text_lines {
            assert!(
                openmetrics_lines.contains(line),
                "{line:?} of {text_accept} not in {accept}:\n{page}\n{text}"
            );
        }
        for (series, _) in openmetrics_lines.difference(&text_lines) {
            let name = series.split(['{', ' ']).next().unwrap_or("");
            assert!(
                name.trim_matches('"').ends_with("_created") || series.contains("_created\""),
                "{series} in {accept} only:\n{page}\n{text}"
            );
        }
    }
    let protobuf = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    let mut page = &scraped(app, protobuf)[..];
    while !page.is_empty() {
        let length = read_varint(&mut page).expect("a family's length") as usize;
        assert!(length <= page.len(), "a family longer than the page");
        let (family, rest) = page.split_at(length);
        assert_wire_fields(family, 0);
        page = rest;
    }
}

/// The sample lines of a text or OpenMetrics page, each as its series (name and labels as
/// written) and its value, without timestamp or exemplar.
fn sample_lines(page: &str) -> std::collections::BTreeSet<(String, String)> {
    let mut lines = std::collections::BTreeSet::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        // The series ends at the first space outside quotes.
        let (mut quoted, mut escaped, mut end) = (false, false, line.len());
        for (at, c) in line.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    end = at;
                    break;
                }
                _ => {}
            }
        }
        let value = line[end..].split(' ').nth(1).unwrap_or("");
        lines.insert((line[..end].to_owned(), value.to_owned()));
    }
    lines
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Walks a message's fields; nested messages (`MetricFamily.metric`, `Metric`'s fields) are
/// walked too, down to `depth` 2.
fn assert_wire_fields(mut message: &[u8], depth: u32) {
    while !message.is_empty() {
        let tag = read_varint(&mut message).expect("a field tag");
        match tag & 7 {
            0 => {
                read_varint(&mut message).expect("a varint");
            }
            1 => message = message.get(8..).expect("8 bytes of a double"),
            2 => {
                let length = read_varint(&mut message).expect("a length") as usize;
                let (inner, rest) = message.split_at_checked(length).expect("length within");
                let nested = matches!((depth, tag >> 3), (0, 4) | (1, 1..=5 | 7));
                if nested {
                    assert_wire_fields(inner, depth + 1);
                }
                message = rest;
            }
            other => panic!("wire type {other}"),
        }
    }
}

/// `/metrics` as read back by the strict reader.
fn held_series(app: &App) -> Vec<text_format::Sample> {
    let body = scraped(app, "*/*");
    text_format::parse(&body).unwrap_or_else(|problem| {
        panic!(
            "/metrics does not parse: {problem}\n{}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// Both pages parse; `/metrics` shows every stored series once, by its escaped names, with its
/// labels and value (a native histogram as its classic buckets, sum and count). Of series that
/// escape to the same name and labels, exactly one is shown, whole.
fn check_pages(app: &App) {
    type Key = (String, Vec<(String, String)>);
    check_other_formats(app);
    let shown = held_series(app);
    let snapshot = app.store.snapshot();
    let labels_of = |s: &SeriesView| -> Vec<(String, String)> {
        let labels: Vec<_> = s
            .labels()
            .map(|(n, v)| (escaped(n, false), v.to_owned()))
            .collect();
        sorted(&labels)
    };
    let without_le = |labels: &[(String, String)]| -> Vec<(String, String)> {
        labels
            .iter()
            .filter(|(label, _)| label != "le")
            .cloned()
            .collect()
    };
    // What float series `x_bucket`, `x_sum` and `x_count` take from a native histogram `x`.
    let taken_by_floats: Vec<Key> = snapshot
        .series
        .iter()
        .filter(|s| snapshot.histogram_of(s).is_none())
        .filter_map(|s| {
            let name = escaped(s.name(), true);
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))?;
            Some((base.to_owned(), without_le(&labels_of(s))))
        })
        .collect();
    // Each shown series (by escaped name and labels), with the lines each candidate would write.
    type Lines = Vec<(Key, f64, i64)>;
    let mut identities: Vec<(Key, Vec<Lines>)> = Vec::new();
    for s in &snapshot.series {
        let labels = labels_of(s);
        let name = escaped(s.name(), true);
        if labels.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            continue; // Two label names escape to one: not shown.
        }
        let line = |suffix: &str, le: Option<f64>, value: f64| {
            let mut labels = labels.clone();
            labels.extend(le.map(|le| ("le".to_owned(), float_text(le))));
            (
                (format!("{name}{suffix}"), sorted(&labels)),
                value,
                s.timestamp_ms,
            )
        };
        let lines = match snapshot.histogram_of(s) {
            // Not shown when its lines would repeat another series' or its own `le`.
            Some(_) if taken_by_floats.contains(&(name.clone(), without_le(&labels))) => continue,
            Some(_) if labels.iter().any(|(label, _)| label == "le") => continue,
            Some(h) => {
                let mut lines: Vec<_> = h
                    .classic_buckets()
                    .into_iter()
                    .map(|(le, count)| line("_bucket", Some(le), count))
                    .collect();
                lines.push(line("_sum", None, h.sum));
                lines.push(line("_count", None, h.count));
                lines
            }
            None => vec![line("", None, s.value)],
        };
        let identity = (name.clone(), labels.clone());
        match identities.iter_mut().find(|(held, _)| *held == identity) {
            Some((_, candidates)) => candidates.push(lines),
            None => identities.push((identity, vec![lines])),
        }
    }
    let timestamps = app.settings.expose_timestamps;
    let mut unclaimed: Vec<_> = shown
        .iter()
        .map(|sample| ((sample.name.clone(), sorted(&sample.labels)), sample))
        .collect();
    for (identity, candidates) in &identities {
        let written = candidates.iter().find(|lines| {
            lines.iter().all(|(key, value, timestamp_ms)| {
                unclaimed.iter().any(|(shown_key, sample)| {
                    shown_key == key
                        && (sample.value == *value || (sample.value.is_nan() && value.is_nan()))
                        && sample.timestamp_ms == timestamps.then_some(*timestamp_ms)
                })
            })
        });
        let Some(lines) = written else {
            panic!(
                "{identity:?} is stored but none of {candidates:?} is shown; shown {unclaimed:?}"
            );
        };
        for (key, _, _) in lines {
            let at = unclaimed.iter().position(|(shown_key, _)| shown_key == key);
            unclaimed.remove(at.expect("found above"));
        }
    }
    let unclaimed: Vec<_> = unclaimed.iter().map(|(key, _)| key).collect();
    assert!(unclaimed.is_empty(), "shown but not stored: {unclaimed:?}");
    let reply = handle(app, &request("GET", "/metrics/exporter", &[], Vec::new()));
    assert_eq!(reply.status, 200);
    if let Err(problem) = text_format::parse(&reply.body) {
        panic!("/metrics/exporter does not parse: {problem}");
    }
}

/// Every series of an accepted request is held, unless its newest sample removed it, or the
/// request names the same series twice (then which sample wins is not this check's business).
fn assert_accepted_series_held(app: &App, request: &WriteRequest, sent_at: i64) {
    let key_of = |series: &TimeSeries| {
        // Lossy: a series without samples is not validated, so it may carry any bytes; one
        // with samples was validated, and a lossy key would then not be found.
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut name = String::new();
        let mut labels = Vec::new();
        for label in &series.labels {
            let (n, v) = (text(&label.name), text(&label.value));
            if n == "__name__" {
                name = escaped(&v, true);
            } else if !v.is_empty() {
                labels.push((escaped(&n, false), v));
            }
        }
        (name, sorted(&labels))
    };
    let keys: Vec<_> = request.timeseries.iter().map(key_of).collect();
    let held: Vec<_> = held_series(app)
        .into_iter()
        .map(|s| (s.name.clone(), sorted(&s.labels)))
        .collect();
    for (series, key) in request.timeseries.iter().zip(&keys) {
        // The sample the server applies: the last of those with the greatest timestamp.
        // Series with a sample near the server's future horizon are left out.
        // So are series with native histograms (shown as buckets), and series whose escaped
        // names are another's (one of them is shown).
        if series.samples.iter().any(|s| s.timestamp > sent_at) || !series.histograms.is_empty() {
            continue;
        }
        let labels = &key.1;
        if labels.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            continue;
        }
        let newest = series.samples.iter().max_by_key(|s| s.timestamp);
        let Some(newest) = newest else { continue };
        if is_stale_marker(newest.value) || keys.iter().filter(|k| *k == key).count() > 1 {
            continue;
        }
        assert!(held.contains(key), "accepted series {key:?} is not held");
    }
}

/// A float as the page spells it.
fn float_text(value: f64) -> String {
    let mut text = Vec::new();
    k8s_exporter::expose::lines::write_float(&mut text, value);
    String::from_utf8(text).expect("floats are ASCII")
}

/// A name as the `underscores` escaping scheme writes it for text 0.0.4: every character
/// outside the legacy set, and a leading digit, becomes `_` (a label name's colons too).
fn escaped(name: &str, metric: bool) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            let legacy = c.is_ascii_alphabetic()
                || c == '_'
                || (metric && c == ':')
                || (i > 0 && c.is_ascii_digit());
            if legacy {
                c
            } else {
                '_'
            }
        })
        .collect()
}
