//! Compressed scrapes: a page of many gzip members or zstd frames, compressed on the worker
//! pool while it is rendered. Readers that are not ours (Python's `gzip`, and `zlib` member by
//! member; Python's `zstandard` reading across frames, and the `zstd` command) read back exactly
//! the plain page in every format; `Accept-Encoding` chooses the coding as RFC 9110 says; and a
//! scraper that hangs up mid-page leaves nothing held.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::cadvisor;
use crate::support::peers::{prometheus_with, query, TempDir};
use crate::support::{now_ms, run_with_stdin_bytes, until, Exporter, HttpResponse};

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

/// Python's reader of a zstd stream of several frames: `zstandard`'s stream reader, told to
/// read across frames (it stops after the first otherwise), counting the frames on the way.
const PYTHON_UNZSTD: &str = r#"
import io, sys, zstandard
data = sys.stdin.buffer.read()
whole = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
frames, rest = 0, data
while rest:
    obj = zstandard.ZstdDecompressor().decompressobj()
    obj.decompress(rest)
    rest = obj.unused_data
    frames += 1
sys.stderr.write("%d frames\n" % frames)
sys.stdout.buffer.write(whole)
"#;

/// A page compressed as `coding` read back by the readers that are not ours, which must agree:
/// the page, and how many members or frames it came in.
fn decompress_elsewhere(coding: &str, body: &[u8]) -> (Vec<u8>, usize) {
    let script = match coding {
        "gzip" => PYTHON_GUNZIP,
        "zstd" => PYTHON_UNZSTD,
        _ => panic!("no reader for {coding}"),
    };
    let output = run_with_stdin_bytes("python3", &["-c", script], body);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{coding}: {said}");
    let parts = said.split_whitespace().next().unwrap().parse().unwrap();
    if coding == "zstd" {
        let command = run_with_stdin_bytes("zstd", &["-d", "-c", "-q"], body);
        assert!(command.status.success(), "zstd -d failed");
        assert!(
            command.stdout == output.stdout,
            "the zstd command and Python disagree"
        );
    }
    (output.stdout, parts)
}

#[test]
fn every_format_zstd_compressed_reads_back_across_frames_as_the_plain_page() {
    let exporter = loaded(&[]);
    for accept in FORMATS {
        let plain = exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
        let zstd = exporter.request(
            "GET",
            "/metrics",
            &[("Accept", accept), ("Accept-Encoding", "zstd,gzip")],
            &[],
        );
        assert_eq!(zstd.header("Content-Encoding"), Some("zstd"), "{accept}");
        assert_eq!(zstd.header("Vary"), Some("Accept, Accept-Encoding"));
        assert!(
            zstd.body.len() * 4 < plain.body.len(),
            "{accept}: {} compressed to {}",
            plain.body.len(),
            zstd.body.len()
        );
        let (page, frames) = decompress_elsewhere("zstd", &zstd.body);
        // Frames of 2 MiB of page at most, so a reader must read across them.
        assert!(
            frames > 1 && frames >= plain.body.len().div_ceil(2 << 20),
            "{accept}: {frames} frames for {} bytes",
            plain.body.len()
        );
        assert!(page == plain.body, "{accept}: not the plain page");
    }
    let own = exporter.request(
        "GET",
        "/metrics/exporter",
        &[("Accept-Encoding", "zstd")],
        &[],
    );
    assert_eq!(own.header("Content-Encoding"), Some("zstd"));
    let (text, frames) = decompress_elsewhere("zstd", &own.body);
    assert_eq!(frames, 1);
    assert!(String::from_utf8(text)
        .unwrap()
        .contains("k8s_exporter_build_info"));
}

/// What `Accept-Encoding` gets, as RFC 9110 weighs it: the coding named in `Content-Encoding`
/// (none for a plain page), and a body that reads back as the plain page.
#[test]
fn accept_encoding_chooses_the_coding() {
    let exporter = loaded(&[]);
    let plain = exporter.get("/metrics").body;
    let cases: [(&str, Option<&str>); 9] = [
        ("zstd,gzip", Some("zstd")),
        ("gzip", Some("gzip")),
        ("zstd;q=0, gzip", Some("gzip")),
        ("gzip;q=0.5, zstd", Some("zstd")),
        ("identity", None),
        ("*", Some("gzip")),
        ("br", None),
        ("q=;;,,garbage==;x", None),
        ("gzip;q=0.5, identity", None),
    ];
    for (field, expected) in cases {
        let answer: HttpResponse =
            exporter.request("GET", "/metrics", &[("Accept-Encoding", field)], &[]);
        assert_eq!(answer.status, 200, "{field}");
        assert_eq!(answer.header("Content-Encoding"), expected, "{field}");
        let page = match expected {
            Some(coding) => decompress_elsewhere(coding, &answer.body).0,
            None => answer.body,
        };
        assert!(page == plain, "{field}: not the plain page");
    }
}

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

/// Asks for a page in `coding`, reads a little of it, and hangs up. A scrape that still holds its
/// room when this one asks makes the server answer 503 and close: then it asks again, as a
/// scraper would, until it gets the page to hang up on.
fn hang_up_early(address: &str, coding: &str) {
    for _ in 0..100 {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {coding}\r\n\r\n")
                    .as_bytes(),
            )
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
    // Room for one gzip scrape at a time (it holds 2.3 MiB besides its snapshot), and for four
    // zstd scrapes in 2 MiB chunks (14 MiB each; zstd's chunks shrink to hold a quarter of
    // the room at most): a scrape whose hold outlived it would, by the first hang-up for gzip
    // and by the fourth for zstd, leave the next one refused with 503 for good.
    for (coding, room) in [("gzip", "5MiB"), ("zstd", "64MiB")] {
        let exporter = loaded(&[&format!("--web.max-bytes-in-flight={room}")]);
        // The server learns of a hang-up at its next write, and lets go of a finished scrape
        // just after its last byte; until then the scrape holds its room, so a scraper asking
        // at once may get 503 and asks again, as a scraper would retry.
        let full = || {
            for _ in 0..100 {
                let answer =
                    exporter.request("GET", "/metrics", &[("Accept-Encoding", coding)], &[]);
                if answer.status != 503 {
                    return answer;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("{coding}: a hung-up scrape still holds its room");
        };
        let whole = full();
        assert_eq!(whole.status, 200);
        assert_eq!(whole.header("Content-Encoding"), Some(coding));
        for _ in 0..8 {
            hang_up_early(&exporter.address, coding);
            assert_eq!(full().status, 200, "{coding}");
        }
        assert!(
            full().body == whole.body,
            "{coding}: the same page after the hang-ups"
        );
    }
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
