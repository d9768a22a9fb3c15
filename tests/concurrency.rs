//! Writers and scrapers at once, and churn: bounded in time and requests, and self-checking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    eventually, now_ms, promtool_check, request, sample_value, series, write_request, write_to,
    Exporter,
};

const WRITERS: usize = 4;
const SERIES_PER_WRITER: usize = 300;
const SCRAPERS: usize = 2;

/// Checks what a scraper can check of every page without a second process: each sample line
/// is `series value` with a number, and each family has one TYPE line.
fn assert_well_formed(page: &str) {
    let mut typed = std::collections::HashSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let family = rest.split(' ').next().unwrap();
            assert!(typed.insert(family.to_owned()), "{family} typed twice");
        } else if !line.starts_with('#') {
            let (_, value) = line.rsplit_once(' ').expect("a value");
            assert!(
                value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
                "{line}"
            );
        }
    }
}

#[test]
fn writers_own_their_series_while_scrapers_read_continuously() {
    writers_own_their_series(Exporter::start(&["--web.threads=2"]));
}

/// The static build's allocator hands blocks between workers, connections and depots: a block
/// handed out twice would show here as a wrong value, a broken page or a crash.
#[test]
fn writers_own_their_series_on_the_static_build() {
    writers_own_their_series(Exporter::start_static(&["--web.threads=2"]));
}

fn writers_own_their_series(exporter: Exporter) {
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(4);

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let address = exporter.address.clone();
            thread::spawn(move || {
                let writer_label = writer.to_string();
                let mut round = 0u32;
                // Bounded both ways: at most 400 rounds, and not past the deadline.
                while round < 400 && Instant::now() < deadline {
                    round += 1;
                    let indexes: Vec<String> =
                        (0..SERIES_PER_WRITER).map(|i| i.to_string()).collect();
                    let timeseries = indexes
                        .iter()
                        .map(|i| {
                            series(
                                &[("__name__", "owned"), ("i", i), ("writer", &writer_label)],
                                &[(f64::from(round), now_ms())],
                            )
                        })
                        .collect();
                    let status = write_to(&address, &write_request(timeseries)).status;
                    assert_eq!(status, 204, "writer {writer} round {round}");
                }
                round
            })
        })
        .collect();
    let scrapers: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let (address, stop) = (exporter.address.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut pages = 0;
                let mut last = String::new();
                while !stop.load(Ordering::Relaxed) && pages < 2000 {
                    let response = request(&address, "GET", "/metrics", &[], &[]);
                    assert_eq!(response.status, 200);
                    last = response.text();
                    assert_well_formed(&last);
                    pages += 1;
                }
                (pages, last)
            })
        })
        .collect();

    let last_rounds: Vec<u32> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    for scraper in scrapers {
        let (pages, last) = scraper.join().unwrap();
        assert!(pages > 0);
        let (code, report) = promtool_check(&last);
        assert!(code == Some(0) || code == Some(3), "promtool: {report}");
    }
    let page = exporter.metrics();
    for (writer, last_round) in last_rounds.iter().enumerate() {
        assert!(*last_round > 1, "writer {writer} made progress");
        for i in 0..SERIES_PER_WRITER {
            let series = format!("owned{{i=\"{i}\",writer=\"{writer}\"}}");
            assert_eq!(
                sample_value(&page, &series),
                Some(f64::from(*last_round)),
                "{series}"
            );
        }
    }
    for code in ["500", "413", "400"] {
        let series = format!("k8s_exporter_write_requests_total{{code=\"{code}\"}}");
        assert_eq!(exporter.exporter_value(&series), Some(0.0), "{code}");
    }
}

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn churn_of_short_lived_series_keeps_memory_bounded() {
    churn_keeps_memory_bounded(Exporter::start(&["--series.ttl=1s"]));
}

/// The static build's allocator never hands small blocks back to `malloc`: what expired series
/// free must be reused by the series that come after them (measured: flat from the 11th of 40
/// rounds on, 1.4 MB above the first).
#[test]
fn churn_keeps_memory_bounded_on_the_static_build() {
    churn_keeps_memory_bounded(Exporter::start_static(&["--series.ttl=1s"]));
}

fn churn_keeps_memory_bounded(exporter: Exporter) {
    const ROUNDS: usize = 12;
    const SERIES_PER_ROUND: usize = 10_000;
    let mut resident = Vec::new();
    for round in 0..ROUNDS {
        // Every round brings label values never seen before, as pods churning would.
        let names: Vec<(String, String)> = (0..SERIES_PER_ROUND)
            .map(|i| (format!("pod-{round}-{i}"), format!("container-{round}-{i}")))
            .collect();
        for chunk in names.chunks(2000) {
            let timeseries = chunk
                .iter()
                .map(|(pod, container)| {
                    series(
                        &[
                            ("__name__", "churn"),
                            ("container", container),
                            ("pod", pod),
                        ],
                        &[(1.0, now_ms())],
                    )
                })
                .collect();
            assert_eq!(exporter.write(&write_request(timeseries)).status, 204);
        }
        // Each round expires before the next one is written.
        eventually(Duration::from_secs(10), "the round to expire", || {
            (exporter.exporter_value("k8s_exporter_series") == Some(0.0)).then_some(())
        });
        resident.push(resident_bytes(exporter.pid()));
    }
    let removed = exporter.exporter_value("k8s_exporter_series_removed_total{reason=\"expired\"}");
    assert_eq!(removed, Some((ROUNDS * SERIES_PER_ROUND) as f64));
    eprintln!("resident bytes after each round of {SERIES_PER_ROUND} new series: {resident:?}");
    // Holding on to expired series and their strings would cost well over a megabyte per round
    // (about 150 bytes per series, plus its two unique strings): 12 MB or more over the rounds
    // after the first. The allocator's own high-water mark settles about 2.5 MB above the
    // first round's (measured: flat from the 20th of 40 rounds on).
    let growth = resident.iter().max().unwrap() - resident[0];
    assert!(
        growth < 6 << 20,
        "memory grew by {growth} bytes over {ROUNDS} rounds of churn: {resident:?}"
    );
}
