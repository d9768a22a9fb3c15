//! A property over random stores: whatever names the series and their metadata clash on
//! (`_total`, `_created`, `_bucket`, `_count`, `_sum`, `_info`, families named as another's
//! series, floats beside native histograms, UTF-8 names that escape onto legacy ones), every
//! format the bridge negotiates holds the series text 0.0.4 holds, as independent parsers
//! read them: `prometheus_client`'s text and OpenMetrics parsers, the published
//! `metrics.proto` for protobuf, and for OpenMetrics 2.0 the ABNF of its published spec, checked
//! by the spec's own checker, with a reader of its composite values (`openmetrics2_series.py`).
//!
//! The stores are drawn from a seeded generator, so a failure names the seed that shows it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_exporter::write::proto::{
    histogram, BucketSpan, Histogram, MetricMetadata, TimeSeries, WriteRequest,
};
use serde_json::{json, Value};

use crate::support::{now_ms, run_with_stdin, upstream, Exporter};

/// How many random stores are tried.
const STORES: u64 = 50;

/// The pages of one store, each under `Accept` headers of one escaping scheme: first the
/// reference (text 0.0.4, or with UTF-8 names allowed text 1.0.0, which quotes them), then
/// the formats compared with it, each with the parser that reads it.
const SCHEMES: [[(&str, Reader); 5]; 2] = [
    [
        ("text/plain;version=0.0.4", Reader::Text),
        ("text/plain;version=1.0.0;escaping=underscores", Reader::Text),
        ("application/openmetrics-text;version=1.0.0", Reader::OpenMetrics),
        ("application/openmetrics-text;version=0.0.1", Reader::OpenMetrics),
        (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
            Reader::Protobuf,
        ),
    ],
    [
        ("text/plain;version=1.0.0;escaping=allow-utf-8", Reader::Text),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", Reader::Text),
        (
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
            Reader::OpenMetrics,
        ),
        (
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
            Reader::OpenMetrics,
        ),
        (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8",
            Reader::Protobuf,
        ),
    ],
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Reader {
    Text,
    OpenMetrics,
    Protobuf,
}

/// A sample as a parser reads it: name, labels, and the value's bits (NaN made one pattern).
type Sample = (String, BTreeMap<String, String>, u64);

/// A series by name and labels.
type Identity = (String, BTreeMap<String, String>);

/// xorshift64: enough to draw stores from a seed.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Names that clash in every way the suffixes allow.
const BASES: [&str; 4] = ["x", "go_memstats_alloc_bytes", "a.b", "a_b"];
const SUFFIXES: [&str; 9] = [
    "",
    "_total",
    "_created",
    "_bucket",
    "_count",
    "_sum",
    "_info",
    "_total_created",
    "_created_total",
];

fn name(draw: &mut Draw) -> String {
    format!("{}{}", draw.pick(&BASES), draw.pick(&SUFFIXES))
}

fn native_histogram(draw: &mut Draw, timestamp: i64) -> Histogram {
    let positive: Vec<i64> = (0..=draw.below(3)).map(|_| draw.below(4) as i64).collect();
    let negative: Vec<i64> = (0..draw.below(2)).map(|_| draw.below(3) as i64).collect();
    let zero = draw.below(3);
    // Deltas, as integer histograms are sent: each bucket's count against the one before.
    let deltas = |counts: &[i64]| -> Vec<i64> {
        let mut before = 0;
        counts
            .iter()
            .map(|&c| {
                let delta = c - before;
                before = c;
                delta
            })
            .collect()
    };
    let total: i64 = positive.iter().chain(&negative).sum::<i64>() + zero as i64;
    let span = |offset: i32, counts: &[i64]| {
        (!counts.is_empty())
            .then_some(BucketSpan {
                offset,
                length: counts.len() as u32,
            })
            .into_iter()
            .collect()
    };
    Histogram {
        count: Some(histogram::Count::CountInt(total as u64 + draw.below(2))),
        sum: draw.below(100) as f64 / 4.0,
        schema: draw.below(3) as i32,
        zero_threshold: 0.001,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(zero)),
        positive_spans: span(draw.below(5) as i32 - 2, &positive),
        positive_deltas: deltas(&positive),
        negative_spans: span(draw.below(3) as i32, &negative),
        negative_deltas: deltas(&negative),
        timestamp,
        ..Default::default()
    }
}

/// A random store's request: 5 to 24 series and up to 6 metadata entries.
fn random_request(seed: u64) -> WriteRequest {
    let mut draw = Draw(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let now = now_ms();
    let mut request = WriteRequest::default();
    for _ in 0..5 + draw.below(20) {
        let name = name(&mut draw);
        let mut labels = vec![("__name__".to_owned(), name)];
        if draw.below(2) == 0 {
            labels.push(("a".into(), draw.pick(&["1", "2"]).into()));
        }
        match draw.below(6) {
            0 => labels.push(("le".into(), draw.pick(&["0.5", "1", "+Inf", "abc"]).into())),
            1 => labels.push(("quantile".into(), draw.pick(&["0.5", "0.9"]).into())),
            _ => {}
        }
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (&**n, &**v)).collect();
        let mut series = TimeSeries::from_pairs(&pairs, &[]);
        if draw.below(5) == 0 {
            series.histograms.push(native_histogram(&mut draw, now));
        } else {
            let value = [0.0, 1.0, 2.5, 7.0, f64::NAN][draw.below(5) as usize];
            series.samples.push(k8s_exporter::write::proto::Sample {
                value,
                timestamp: now,
            });
        }
        request.timeseries.push(series);
    }
    for _ in 0..draw.below(7) {
        let family = format!(
            "{}{}",
            draw.pick(&BASES),
            draw.pick(&["", "", "_total", "_created", "_bucket"])
        );
        request.metadata.push(MetricMetadata {
            r#type: draw.below(8) as i32,
            metric_family_name: family.into_bytes().into(),
            help: b"h".to_vec().into(),
            unit: Default::default(),
        });
    }
    request
}

fn canonical_bits(value: f64) -> u64 {
    if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    }
}

/// `le` and `quantile` as numbers where they are, so that `1` and `1.0` compare alike.
fn canonical_labels(mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    for bound in ["le", "quantile"] {
        if let Some(number) = labels.get(bound).and_then(|v| v.parse::<f64>().ok()) {
            labels.insert(bound.into(), format!("{number:?}"));
        }
    }
    labels
}

/// An OpenMetrics 2.0 page checked against the spec's grammar and read as series: the samples,
/// the native histograms' `(name, labels)`, and how many families kept a type; or why the page
/// is refused.
pub fn openmetrics2_samples(
    page: &str,
) -> Result<(BTreeSet<Sample>, BTreeSet<Identity>, usize), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openmetrics2_series.py");
    let output = run_with_stdin("python3", &[script], &json!([page]).to_string());
    assert!(
        output.status.success(),
        "openmetrics2_series.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let result = &results[0];
    if let Some(error) = result.get("error") {
        return Err(error.to_string());
    }
    let labels = |value: &Value| -> BTreeMap<String, String> {
        canonical_labels(serde_json::from_value(value.clone()).unwrap())
    };
    let samples = result["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let value = f64::from_bits(s[2].as_i64().unwrap() as u64);
            (
                s[0].as_str().unwrap().to_owned(),
                labels(&s[1]),
                canonical_bits(value),
            )
        })
        .collect();
    let natives = result["natives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n[0].as_str().unwrap().to_owned(), labels(&n[1])))
        .collect();
    Ok((
        samples,
        natives,
        result["families"].as_u64().unwrap() as usize,
    ))
}

/// Each page of `pages` read by `prometheus_client`, in one run of the parser.
fn parse_with_python(pages: &[(Reader, String)]) -> Vec<Result<BTreeSet<Sample>, String>> {
    let input: Vec<Value> = pages
        .iter()
        .map(|(reader, page)| {
            let format = match reader {
                Reader::OpenMetrics => "openmetrics",
                _ => "text",
            };
            json!({"format": format, "page": page})
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/series_set.py");
    let output = run_with_stdin("python3", &[script], &Value::from(input).to_string());
    assert!(
        output.status.success(),
        "series_set.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    results
        .into_iter()
        .map(|result| match result {
            Value::Array(samples) => Ok(samples
                .into_iter()
                .map(|sample| {
                    let labels: BTreeMap<String, String> =
                        serde_json::from_value(sample[1].clone()).unwrap();
                    let value = f64::from_bits(sample[2].as_i64().unwrap() as u64);
                    (
                        sample[0].as_str().unwrap().to_owned(),
                        canonical_labels(labels),
                        canonical_bits(value),
                    )
                })
                .collect()),
            other => Err(other["error"].to_string()),
        })
        .collect()
}

fn json_f64(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            s => s.parse().unwrap(),
        },
        other => panic!("not a number: {other}"),
    }
}

/// A count: `uint64` unless its `_float` field says otherwise.
fn json_count(message: &Value, int_field: &str, float_field: &str) -> f64 {
    let float = json_f64(&message[float_field]);
    if float > 0.0 {
        float
    } else {
        json_f64(&message[int_field])
    }
}

/// A protobuf page as series, the way Prometheus turns `MetricFamily` messages into them; a
/// native histogram as its `_count`, `_sum` and `+Inf` bucket, which are also the lines text
/// 0.0.4 writes for it (its other buckets are compared on the text pages). Returns the series
/// and the native histograms' `(name, labels)`.
fn protobuf_samples(page: &[u8]) -> (BTreeSet<Sample>, BTreeSet<Identity>) {
    let mut samples = BTreeSet::new();
    let mut natives = BTreeSet::new();
    for family in upstream::decode_protobuf_page(page) {
        let name = family["name"].as_str().unwrap().to_owned();
        for metric in family["metric"].as_array().unwrap() {
            let labels: BTreeMap<String, String> = metric["label"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    let text = |key: &str| pair[key].as_str().unwrap().to_owned();
                    (text("name"), text("value"))
                })
                .collect();
            let mut add = |suffix: &str, extra: Option<(&str, f64)>, value: f64| {
                let mut labels = labels.clone();
                if let Some((label, bound)) = extra {
                    labels.insert(label.into(), format!("{bound:?}"));
                }
                samples.insert((
                    format!("{name}{suffix}"),
                    canonical_labels(labels),
                    canonical_bits(value),
                ));
            };
            match family["type"].as_str().unwrap() {
                "COUNTER" => add("", None, json_f64(&metric["counter"]["value"])),
                "GAUGE" => add("", None, json_f64(&metric["gauge"]["value"])),
                "UNTYPED" => add("", None, json_f64(&metric["untyped"]["value"])),
                "SUMMARY" => {
                    let summary = &metric["summary"];
                    for quantile in summary["quantile"].as_array().unwrap() {
                        let bound = json_f64(&quantile["quantile"]);
                        add("", Some(("quantile", bound)), json_f64(&quantile["value"]));
                    }
                    add("_sum", None, json_f64(&summary["sampleSum"]));
                    add("_count", None, json_f64(&summary["sampleCount"]));
                }
                "HISTOGRAM" => {
                    let h = &metric["histogram"];
                    let count = json_count(h, "sampleCount", "sampleCountFloat");
                    let native = !h["positiveSpan"].as_array().unwrap().is_empty()
                        || !h["negativeSpan"].as_array().unwrap().is_empty();
                    if native {
                        natives.insert((name.clone(), canonical_labels(labels.clone())));
                        add("_bucket", Some(("le", f64::INFINITY)), count);
                    }
                    for bucket in h["bucket"].as_array().unwrap() {
                        let bound = json_f64(&bucket["upperBound"]);
                        let cumulative =
                            json_count(bucket, "cumulativeCount", "cumulativeCountFloat");
                        add("_bucket", Some(("le", bound)), cumulative);
                    }
                    add("_sum", None, json_f64(&h["sampleSum"]));
                    add("_count", None, count);
                }
                other => panic!("type {other} in {family}"),
            }
        }
    }
    (samples, natives)
}

/// `samples` with the buckets of these native histograms left out, but for `+Inf`.
fn without_native_buckets(
    samples: &BTreeSet<Sample>,
    natives: &BTreeSet<Identity>,
) -> BTreeSet<Sample> {
    let infinity = format!("{:?}", f64::INFINITY);
    samples
        .iter()
        .filter(|(name, labels, _)| {
            let Some(base) = name.strip_suffix("_bucket") else {
                return true;
            };
            let mut identity = labels.clone();
            let le = identity.remove("le");
            !natives.contains(&(base.to_owned(), identity)) || le.as_ref() == Some(&infinity)
        })
        .cloned()
        .collect()
}

/// What one set has that the other has not, for a failure message.
fn difference(left: &BTreeSet<Sample>, right: &BTreeSet<Sample>) -> String {
    let show = |set: BTreeSet<&Sample>| {
        set.iter()
            .map(|(n, l, v)| format!("{n}{l:?} {}", f64::from_bits(*v)))
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    format!(
        "only in the reference:\n  {}\nonly in the other:\n  {}",
        show(left.difference(right).collect()),
        show(right.difference(left).collect())
    )
}

#[test]
fn every_format_holds_the_series_text_holds_in_random_stores() {
    let mut checked_series = 0;
    let mut typed_openmetrics_families = 0;
    let mut typed_openmetrics2_families = 0;
    for seed in 1..=STORES {
        let exporter = Exporter::start(&[]);
        let request = random_request(seed);
        let response = exporter.write(&request);
        assert_eq!(response.status, 204, "seed {seed}: {}", response.text());
        let get = |accept: &str| exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
        let mut utf8_reference = BTreeSet::new();
        for scheme in SCHEMES {
            let (reference, _) = scheme[0];
            let mut pages = Vec::new();
            let mut protobuf_page = Vec::new();
            for (accept, reader) in scheme {
                let body = get(accept).body;
                match reader {
                    Reader::Protobuf => protobuf_page = body,
                    _ => pages.push((reader, String::from_utf8(body).unwrap())),
                }
            }
            let read = parse_with_python(&pages);
            let text = read[0].as_ref().unwrap_or_else(|e| {
                panic!("seed {seed}: {reference} refused: {e}\n{}", pages[0].1)
            });
            checked_series += text.len();
            utf8_reference = text.clone();
            for ((reader, page), samples) in pages.iter().zip(&read).skip(1) {
                let samples = samples
                    .as_ref()
                    .unwrap_or_else(|e| panic!("seed {seed}: {reader:?} refused: {e}\n{page}"));
                assert!(
                    samples == text,
                    "seed {seed}, {reader:?} against {reference}:\n{}\n{page}\nreference:\n{}",
                    difference(text, samples),
                    pages[0].1
                );
                if *reader == Reader::OpenMetrics {
                    typed_openmetrics_families += page
                        .lines()
                        .filter(|l| l.starts_with("# TYPE") && !l.ends_with(" unknown"))
                        .count();
                }
            }
            let (samples, natives) = protobuf_samples(&protobuf_page);
            let text_read_as_protobuf = without_native_buckets(text, &natives);
            assert!(
                samples == text_read_as_protobuf,
                "seed {seed}, protobuf against {reference}:\n{}\nreference:\n{}",
                difference(&text_read_as_protobuf, &samples),
                pages[0].1
            );
        }
        // OpenMetrics 2.0 names every series as it is, as text 1.0.0 with UTF-8 names does.
        let page = get("application/openmetrics-text;version=2.0.0").text();
        let (samples, natives, typed) = openmetrics2_samples(&page)
            .unwrap_or_else(|e| panic!("seed {seed}: OpenMetrics 2.0 refused: {e}\n{page}"));
        typed_openmetrics2_families += typed;
        let reference = without_native_buckets(&utf8_reference, &natives);
        assert!(
            samples == reference,
            "seed {seed}, OpenMetrics 2.0 against text 1.0.0:\n{}\n{page}",
            difference(&reference, &samples)
        );
    }
    // The stores are not trivial: many series, and families that keep their types.
    assert!(checked_series > 20 * STORES as usize, "{checked_series}");
    assert!(
        typed_openmetrics2_families > STORES as usize,
        "{typed_openmetrics2_families}"
    );
    assert!(
        typed_openmetrics_families > STORES as usize,
        "{typed_openmetrics_families}"
    );
}
