//! gzip scrapes: a page of many members, compressed on the worker pool while it is rendered.
//! Readers that are not ours (Python's `gzip`, and `zlib` member by member) read back exactly
//! the plain page in every format, and a scraper that hangs up mid-page leaves nothing held.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::cadvisor;
use crate::support::peers::{prometheus_with, query, TempDir};
use crate::support::{now_ms, run_with_stdin_bytes, until, Exporter};

const FORMATS: [&str; 4] = [
    "text/plain;version=0.0.4",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0",
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
];

/// An exporter holding thousands of cAdvisor-shaped series: a page of many gzip members. Also
/// how many series it holds.
fn loaded_with_count(flags: &[&str]) -> (Exporter, usize) {
    let exporter = Exporter::start(flags);
    let (requests, expected) = cadvisor::load(12, 40, 2000, now_ms());
    for request in &requests {
        assert_eq!(exporter.write(request).status, 204);
    }
    (exporter, expected.len())
}

fn loaded(flags: &[&str]) -> Exporter {
    loaded_with_count(flags).0
}

/// Python's readers of the gzip stream: `gzip.decompress`, and `zlib` taking one member after
/// another (each `decompressobj` stops at the end of its member).
const PYTHON_GUNZIP: &str = r#"
import gzip, sys, zlib
data = sys.stdin.buffer.read()
whole = gzip.decompress(data)
parts, rest, members = [], data, 0
while rest:
    member = zlib.decompressobj(16 + zlib.MAX_WBITS)
    parts.append(member.decompress(rest))
    rest = member.unused_data
    members += 1
assert b"".join(parts) == whole, "zlib and gzip disagree"
sys.stderr.write("%d members\n" % members)
sys.stdout.buffer.write(whole)
"#;

#[test]
fn every_format_gzipped_reads_back_as_the_plain_page_with_python() {
    let exporter = loaded(&[]);
    for accept in FORMATS {
        let plain = exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
        let zipped = exporter.request(
            "GET",
            "/metrics",
            &[("Accept", accept), ("Accept-Encoding", "gzip")],
            &[],
        );
        assert_eq!(zipped.header("Content-Encoding"), Some("gzip"), "{accept}");
        assert!(
            plain.body.len() > 4 << 20,
            "{accept}: a page of many members"
        );
        assert!(
            zipped.body.len() * 4 < plain.body.len(),
            "{accept}: {} compressed to {}",
            plain.body.len(),
            zipped.body.len()
        );
        let output = run_with_stdin_bytes("python3", &["-c", PYTHON_GUNZIP], &zipped.body);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{accept}: {said}");
        let members: usize = said.split_whitespace().next().unwrap().parse().unwrap();
        assert!(members > 10, "{accept}: {members} members");
        assert!(output.stdout == plain.body, "{accept}: not the plain page");
    }
    // The exporter's own page too, in one member.
    let own = exporter.request(
        "GET",
        "/metrics/exporter",
        &[("Accept-Encoding", "gzip")],
        &[],
    );
    let output = run_with_stdin_bytes("python3", &["-c", PYTHON_GUNZIP], &own.body);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("k8s_exporter_build_info"), "{text}");
}

/// Asks for a gzip page, reads a little of it, and hangs up. A scrape that still holds its
/// room when this one asks makes the server answer 503 and close: then it asks again, as a
/// scraper would, until it gets the page to hang up on.
fn hang_up_early(address: &str) {
    for _ in 0..100 {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut some = [0u8; 16 << 10];
        if stream.read_exact(&mut some).is_ok() {
            assert!(some.starts_with(b"HTTP/1.1 200"), "{:?}", &some[..16]);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no scrape to hang up on: every answer was cut short");
}

#[test]
fn a_scraper_that_hangs_up_mid_page_leaves_nothing_held() {
    // Room for one gzip scrape at a time: a scrape whose hold outlived it would make the next
    // one wait for room and be refused with 503.
    let exporter = loaded(&["--web.max-bytes-in-flight=5MiB"]);
    let full = |exporter: &Exporter| {
        exporter.request("GET", "/metrics", &[("Accept-Encoding", "gzip")], &[])
    };
    let whole = full(&exporter);
    assert_eq!(whole.status, 200);
    for _ in 0..8 {
        hang_up_early(&exporter.address);
        // The server learns of the hang-up at its next write; until then the scrape holds
        // its room, so wait for it to let go, as a next scraper would retry.
        let mut status = 0;
        for _ in 0..100 {
            status = full(&exporter).status;
            if status == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(status, 200, "a hung-up scrape still holds its room");
    }
    assert_eq!(
        full(&exporter).body,
        whole.body,
        "the same page after the hang-ups"
    );
}

/// Prometheus 2.42 scrapes with gzip, asking for OpenMetrics first, or protobuf first with
/// native histograms on: each holds every series of a page of many members.
#[test]
fn prometheus_reads_every_series_of_a_many_member_page_in_the_formats_it_asks_for() {
    let (exporter, series) = loaded_with_count(&["--series.ttl=0"]);
    let dir = TempDir::new("gzip-prometheus");
    let config = json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "bridge",
            "honor_labels": true,
            "static_configs": [{"targets": [exporter.address]}],
        }],
    });
    let openmetrics = prometheus_with("openmetrics", &config, &dir.0, &[]);
    let protobuf = prometheus_with(
        "protobuf",
        &config,
        &dir.0,
        &["--enable-feature=native-histograms"],
    );
    let held = r#"count({__name__=~".+",__name__!~"up|scrape_.+"})"#;
    for peer in [&openmetrics, &protobuf] {
        until(
            Duration::from_secs(30),
            "Prometheus to hold every series",
            || {
                let count = query(peer, held).into_values().next().unwrap_or_default();
                if count == series.to_string() {
                    Ok(())
                } else {
                    Err(format!("{count:?} of {series}"))
                }
            },
        );
    }
}
