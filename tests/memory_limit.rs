//! A pod's memory limit is never crossed: the binary, started with no sizing flag in a real
//! memory cgroup of 64 MiB (as a pod's `resources.limits.memory` makes one), takes its limit
//! from the cgroup, then meets a cardinality explosion of new cAdvisor series over remote
//! write and OTLP while being scraped. It is never OOM-killed, stays under the limit, keeps
//! every earlier series fresh, refuses the new series it has no room for (counted as
//! `memory_limit`), takes new series again once old ones go, and follows a limit changed while
//! it runs. For the static build and the glibc build alike.
//!
//! Needs root, to make the cgroup; where none can be made the test fails and says why.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use k8s_exporter::write::proto::{TimeSeries, WriteRequest};
use serde_json::json;

use crate::support::cgroup::MemoryCgroup;
use crate::support::{
    eventually, now_ms, release_binary, sample_value, series, static_binary, upstream,
    write_request, Exporter, HttpResponse,
};

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 64 * MIB;
/// Series written before the explosion, rewritten with fresh values all through it.
const EARLIER: usize = 1000;
/// New series the explosion sends: more than 64 MiB can hold.
const EXPLOSION: usize = 400_000;
/// Series per request, as Prometheus's `max_samples_per_send` (2000) sends them.
const BATCH: usize = 2000;
/// Prometheus's stale marker, which removes a series at once.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The cAdvisor series of container `container` of pod `pod`: the labels cAdvisor writes, with
/// a pod uid, a 64-digit container id and a container name of its own; `metric` names one of
/// the [`METRICS`] each container sends here.
fn cadvisor_series(
    pod: &str,
    container: usize,
    metric: &str,
    value: f64,
    timestamp: i64,
) -> TimeSeries {
    let id = format!(
        "/kubepods/burstable/pod{pod}-0c1d/{:064x}",
        container * 7919 + 17
    );
    let name = format!("k8s_app_{pod}_team-a_{container:08x}-4e1b_0");
    series(
        &[
            ("__name__", metric),
            ("cluster", "prod-eu-1"),
            ("container", "app"),
            ("id", &id),
            ("image", "registry.example.com/team-a/web:1.4.2"),
            ("instance", "node-7:10250"),
            ("job", "kubernetes-cadvisor"),
            ("name", &name),
            ("namespace", "team-a"),
            ("pod", pod),
        ],
        &[(value, timestamp)],
    )
}

/// Each container sends its memory, its CPU and its file system use.
const METRICS: [&str; 3] = [
    "container_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "container_fs_usage_bytes",
];

fn earlier(value: f64) -> WriteRequest {
    let now = now_ms();
    write_request(
        (0..EARLIER)
            .map(|i| cadvisor_series(&format!("steady-{i:04}"), i, METRICS[0], value, now))
            .collect(),
    )
}

fn explosion_batch(first: usize, value: f64) -> WriteRequest {
    let now = now_ms();
    write_request(
        (first..first + BATCH)
            .map(|i| {
                let container = i / METRICS.len();
                let pod = format!("burst-{container:06}");
                cadvisor_series(
                    &pod,
                    EARLIER + container,
                    METRICS[i % METRICS.len()],
                    value,
                    now,
                )
            })
            .collect(),
    )
}

/// The value of the series of the earlier pod `i` on `page`, as exposed.
fn earlier_value(page: &str, i: usize) -> Option<f64> {
    let line = format!(
        "container_memory_working_set_bytes{{cluster=\"prod-eu-1\",container=\"app\",id=\"/kubepods/burstable/podsteady-{i:04}-0c1d/{:064x}\",image=\"registry.example.com/team-a/web:1.4.2\",instance=\"node-7:10250\",job=\"kubernetes-cadvisor\",name=\"k8s_app_steady-{i:04}_team-a_{i:08x}-4e1b_0\",namespace=\"team-a\",pod=\"steady-{i:04}\"}}",
        i * 7919 + 17
    );
    sample_value(page, &line)
}

/// Peak resident memory of process `pid` (`VmHWM`), in bytes.
fn peak_resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

/// An OTLP request of `count` gauges of new series, as an SDK sends them.
fn otlp_explosion(first: usize, count: usize) -> Vec<u8> {
    let now = format!("{}000000", now_ms());
    let points: Vec<_> = (first..first + count)
        .map(|i| {
            json!({"asDouble": 1.0, "timeUnixNano": now, "attributes": [
                {"key": "request.id", "value": {"stringValue": format!("{i:064x}")}}]})
        })
        .collect();
    upstream::otlp_request(json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeMetrics": [{"metrics": [{"name": "requests_in_flight", "gauge": {"dataPoints": points}}]}],
    }]}))
}

/// Writes as Prometheus's remote write does: a 503 (bytes in flight at their cap while a
/// scrape is sent) is retried after a backoff.
fn write_retrying(exporter: &Exporter, request: &WriteRequest) -> HttpResponse {
    for _ in 0..100 {
        let answer = exporter.write(request);
        if answer.status != 503 {
            return answer;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("still 503 after 100 tries");
}

#[test]
fn static_build_in_a_64_mib_cgroup_survives_a_cardinality_explosion() {
    survives_a_cardinality_explosion("static", &static_binary());
}

#[test]
fn glibc_build_in_a_64_mib_cgroup_survives_a_cardinality_explosion() {
    survives_a_cardinality_explosion("glibc", &release_binary());
}

fn survives_a_cardinality_explosion(name: &str, binary: &Path) {
    let cgroup = MemoryCgroup::new(name, LIMIT);
    let exporter = Exporter::start_command(cgroup.command(binary), &[]);
    let pid = exporter.pid();
    assert_eq!(
        exporter.exporter_value("k8s_exporter_memory_limit_bytes"),
        Some(LIMIT as f64),
        "the limit comes from the cgroup"
    );
    let series_limit = exporter
        .exporter_value("k8s_exporter_series_limit")
        .unwrap();
    assert!(
        series_limit < 2_000_000.0,
        "--series.max derives from the limit: {series_limit}"
    );

    assert_eq!(exporter.write(&earlier(0.0)).status, 204);

    // A scraper all through the explosion, as prometheus2 keeps scraping (every second).
    let scraping = Arc::new(AtomicBool::new(true));
    let scraper = {
        let (address, scraping) = (exporter.address.clone(), Arc::clone(&scraping));
        thread::spawn(move || {
            let mut scrapes = 0;
            while scraping.load(Ordering::Relaxed) {
                let encoding = if scrapes % 2 == 0 { "gzip" } else { "identity" };
                let page = crate::support::request(
                    &address,
                    "GET",
                    "/metrics",
                    &[("Accept-Encoding", encoding)],
                    &[],
                );
                assert_eq!(page.status, 200);
                scrapes += 1;
                thread::sleep(Duration::from_secs(1));
            }
            scrapes
        })
    };

    let (mut accepted, mut refused) = (0, 0);
    for (round, first) in (0..EXPLOSION).step_by(BATCH).enumerate() {
        let answer = write_retrying(&exporter, &explosion_batch(first, 1.0));
        match answer.status {
            204 => accepted += BATCH,
            400 => {
                let text = answer.text();
                assert!(text.contains("memory limit"), "{text}");
                refused += 1;
            }
            other => panic!("explosion batch at {first}: {other} {}", answer.text()),
        }
        // The earlier series keep being written, all of them stored.
        let fresh = write_retrying(&exporter, &earlier((round + 1) as f64));
        assert_eq!(fresh.status, 204, "{}", fresh.text());
    }
    let otlp = exporter.request(
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        &otlp_explosion(0, 5000),
    );
    assert_eq!(otlp.status, 200, "{}", otlp.text());
    let answer = upstream::otlp_response(&otlp.body);
    let rejected: u64 = answer["partialSuccess"]["rejectedDataPoints"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap();
    assert!(rejected > 0, "OTLP refuses new series too: {answer}");
    scraping.store(false, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap();
    assert!(scrapes > 0);

    assert_eq!(cgroup.oom_kills(), 0, "{name}: OOM-killed");
    let held = exporter.exporter_value("k8s_exporter_series").unwrap();
    // What the kernel holds against the limit: the cgroup's charge (resident memory that is
    // the process's own, and the pages it brought in). `VmHWM` also counts shared pages
    // charged elsewhere (the glibc build's shared libraries), so it is only reported.
    let peak = peak_resident(pid);
    let charged = cgroup.peak_charge();
    assert!(
        charged < LIMIT,
        "{name}: the cgroup's peak charge {charged} bytes (peak resident {peak})"
    );
    eprintln!("{name}: peak charge {charged}, peak resident {peak}, {held} series held, {accepted} accepted");
    assert!(held >= 100_000.0, "{name}: only {held} series held");
    assert!(
        refused > 0,
        "{name}: nothing refused, {accepted} series accepted"
    );
    let dropped = exporter
        .exporter_value("k8s_exporter_samples_dropped_total{reason=\"memory_limit\"}")
        .unwrap();
    assert!(dropped >= (refused * BATCH) as f64 / 2.0, "{dropped}");
    assert_eq!(
        exporter.exporter_value("k8s_exporter_samples_dropped_total{reason=\"series_limit\"}"),
        Some(0.0),
        "memory, not the derived series limit, is what refused"
    );
    let rounds = EXPLOSION / BATCH;
    let page = exporter.metrics();
    for i in 0..EARLIER {
        assert_eq!(
            earlier_value(&page, i),
            Some(rounds as f64),
            "{name}: earlier series {i} is not fresh"
        );
    }

    // Old series go (their stale markers): new series are taken again.
    let stale = f64::from_bits(STALE_NAN);
    for first in (0..accepted).step_by(BATCH) {
        assert_eq!(exporter.write(&explosion_batch(first, stale)).status, 204);
    }
    eventually(Duration::from_secs(10), "new series taken again", || {
        (exporter.write(&explosion_batch(EXPLOSION, 1.0)).status == 204).then_some(())
    });
    assert_eq!(cgroup.oom_kills(), 0, "{name}: OOM-killed");

    // A limit raised while running (an in-place pod resize) is followed.
    cgroup.set_limit(LIMIT * 2);
    eventually(Duration::from_secs(25), "the new limit", || {
        (exporter.exporter_value("k8s_exporter_memory_limit_bytes") == Some((LIMIT * 2) as f64))
            .then_some(())
    });
    let raised = exporter
        .exporter_value("k8s_exporter_series_limit")
        .unwrap();
    assert!(raised > series_limit, "{raised} after {series_limit}");
    drop(exporter);
}
