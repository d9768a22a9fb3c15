//! The read side over HTTP: content types, gzip, timestamps, the landing page, 404 and 405.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::support::{now_ms, series, write_request, Exporter};

#[test]
fn metrics_page_has_the_text_format_content_type() {
    let exporter = Exporter::start(&[]);
    exporter.write(&write_request(vec![series(
        &[("__name__", "m")],
        &[(1.0, now_ms())],
    )]));
    let response = exporter.get("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        response.text().contains("\n# TYPE m untyped\nm 1\n"),
        "{}",
        response.text()
    );
}

#[test]
fn gzip_is_sent_when_the_scraper_asks_for_it() {
    let exporter = Exporter::start(&[]);
    // An empty page is still a whole gzip stream.
    let empty = exporter.request("GET", "/metrics", &[("Accept-Encoding", "gzip")], &[]);
    let mut unzipped = String::new();
    GzDecoder::new(&empty.body[..])
        .read_to_string(&mut unzipped)
        .expect("valid gzip of an empty page");
    assert_eq!(unzipped, "");
    let now = now_ms();
    let many = (0..200).map(|i| {
        series(
            &[("__name__", "m"), ("pod", &format!("pod-{i}"))],
            &[(i as f64, now)],
        )
    });
    exporter.write(&write_request(many.collect()));
    let plain = exporter.metrics();
    for path in ["/metrics", "/metrics/exporter"] {
        let response = exporter.request("GET", path, &[("Accept-Encoding", "gzip")], &[]);
        assert_eq!(response.header("Content-Encoding"), Some("gzip"), "{path}");
        let mut unzipped = String::new();
        GzDecoder::new(&response.body[..])
            .read_to_string(&mut unzipped)
            .expect("valid gzip");
        assert!(unzipped.contains("# TYPE"), "{path}");
        if path == "/metrics" {
            assert_eq!(unzipped, plain);
            assert!(
                response.body.len() * 4 < plain.len(),
                "gzip shrinks the page"
            );
        }
    }
    assert_eq!(exporter.get("/metrics").header("Content-Encoding"), None);
}

#[test]
fn timestamps_are_exposed_only_when_asked() {
    let now = now_ms();
    let request = write_request(vec![series(&[("__name__", "m")], &[(1.0, now)])]);
    let without = Exporter::start(&[]);
    without.write(&request);
    assert!(without.metrics().contains("\nm 1\n"));
    let with = Exporter::start(&["--web.expose-timestamps"]);
    with.write(&request);
    assert!(with.metrics().contains(&format!("\nm 1 {now}\n")));
}

#[test]
fn health_landing_and_errors() {
    let exporter = Exporter::start(&["--web.telemetry-path=/bridged"]);
    let health = exporter.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));

    let landing = exporter.get("/");
    assert_eq!(landing.status, 200);
    assert_eq!(
        landing.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    for needle in [
        "href=\"/bridged\"",
        "href=\"/metrics/exporter\"",
        "href=\"/healthz\"",
        "/api/v1/write",
        "series: 0",
        "--web.telemetry-path",
    ] {
        assert!(
            landing.text().contains(needle),
            "{needle} missing from the landing page"
        );
    }
    assert_eq!(exporter.get("/bridged").status, 200);

    let missing = exporter.get("/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text().lines().count(), 1);

    let post = exporter.request("POST", "/bridged", &[], b"x");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    let get = exporter.get("/write");
    assert_eq!(get.status, 405);
    assert_eq!(get.header("Allow"), Some("POST"));

    let head = exporter.request("HEAD", "/healthz", &[], &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // A page is not rendered for HEAD: the head says how it would come, and nothing follows.
    let head = exporter.request("HEAD", "/bridged", &[], &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));
    assert!(head.body.is_empty());
}
