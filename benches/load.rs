//! `make bench`: drives the real binary with a realistic remote-write load over loopback and
//! prints throughput, CPU, memory and scrape figures; with `--compare-prometheus`, runs the same
//! payloads against Prometheus's own receiver and `/federate` and prints the ratios.
//!
//! The load: cAdvisor-shaped series with 12 labels each (long `id`, `name` and `image`),
//! about 600 bytes per series uncompressed, sent in requests of `--batch` series over
//! `--connections` keep-alive connections. Round 0 creates every series; later rounds append a
//! new sample to each. Payloads are built and compressed before anything is timed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_exporter::write::proto::{histogram, v2, BucketSpan, Histogram, TimeSeries, WriteRequest};
use prost::Message;

/// The memory cgroup `--held-under` runs the binary in, as `tests/memory_limit.rs` does.
#[path = "../tests/support/cgroup.rs"]
mod cgroup;

const USAGE: &str = "usage: load [--series N] [--batch N] [--connections N] [--append-rounds N] \
[--scrapes N] [--protocol 1|2] [--otlp | --otlp-gzip] [--native-histograms] [--binary PATH] [--compare-prometheus] [--versus PATH [--trials N]] \
[--stages] [--exporter-flag FLAG]... [--held-under SIZE]";

struct Options {
    series: usize,
    batch: usize,
    connections: usize,
    append_rounds: usize,
    scrapes: usize,
    binary: PathBuf,
    compare_prometheus: bool,
    versus: Option<PathBuf>,
    trials: usize,
    stages: bool,
    /// Remote write 1.0 or 2.0, or OTLP: the same series and samples whichever.
    wire: Wire,
    /// One series in 25 (one per container) sends a native histogram instead of a float.
    native_histograms: bool,
    /// Flags for the exporter of `--binary` only (not `--versus`'s, which may predate them).
    exporter_flags: Vec<String>,
    /// Run the binary in a memory cgroup of this many bytes, with no sizing flag, and send new
    /// series until the memory guard or the derived series limit refuses them.
    held_under: Option<u64>,
}

fn options() -> Options {
    let mut options = Options {
        series: 100_000,
        batch: 2000,
        connections: 4,
        append_rounds: 3,
        scrapes: 5,
        binary: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/k8s_exporter"
        )),
        compare_prometheus: false,
        versus: None,
        trials: 5,
        stages: false,
        wire: Wire::RemoteWrite1,
        native_histograms: false,
        exporter_flags: Vec::new(),
        held_under: None,
    };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--series" => options.series = value().parse().expect(USAGE),
            "--batch" => options.batch = value().parse().expect(USAGE),
            "--connections" => options.connections = value().parse().expect(USAGE),
            "--append-rounds" => options.append_rounds = value().parse().expect(USAGE),
            "--scrapes" => options.scrapes = value().parse().expect(USAGE),
            "--binary" => options.binary = PathBuf::from(value()),
            "--compare-prometheus" => options.compare_prometheus = true,
            "--versus" => options.versus = Some(PathBuf::from(value())),
            "--trials" => {
                options.trials = value().parse().expect(USAGE);
                assert!(options.trials > 0, "--trials must be at least 1\n{USAGE}");
            }
            "--stages" => options.stages = true,
            "--native-histograms" => options.native_histograms = true,
            "--protocol" => {
                options.wire = match value().as_str() {
                    "1" => Wire::RemoteWrite1,
                    "2" => Wire::RemoteWrite2,
                    _ => panic!("--protocol is 1 or 2\n{USAGE}"),
                }
            }
            "--exporter-flag" => options.exporter_flags.push(value()),
            "--held-under" => {
                let size = k8s_exporter::base::units::parse_size(&value()).expect(USAGE);
                options.held_under = Some(size as u64);
            }
            "--otlp" => options.wire = Wire::Otlp,
            "--otlp-gzip" => options.wire = Wire::OtlpGzip,
            _ => panic!("unknown argument {arg}\n{USAGE}"),
        }
    }
    options
}

/// What the load is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    RemoteWrite1,
    RemoteWrite2,
    /// OTLP/HTTP protobuf, uncompressed as the OpenTelemetry SDKs send by default: each series
    /// a gauge data point, its metric name the series' `__name__`, its other labels attributes.
    Otlp,
    /// The same gzipped (libdeflate level 6), as the collector's `otlphttp` exporter sends.
    OtlpGzip,
}

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::RemoteWrite1 => "remote write 1.0",
            Wire::RemoteWrite2 => "remote write 2.0",
            Wire::Otlp => "OTLP/HTTP protobuf",
            Wire::OtlpGzip => "OTLP/HTTP protobuf, gzip",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Wire::Otlp | Wire::OtlpGzip => "/v1/metrics",
            _ => "/write",
        }
    }

    fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Wire::RemoteWrite1 => &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            Wire::RemoteWrite2 => &[
                (
                    "Content-Type",
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                ),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "2.0.0"),
            ],
            Wire::Otlp => &[("Content-Type", "application/x-protobuf")],
            Wire::OtlpGzip => &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "gzip"),
            ],
        }
    }
}

/// A deterministic xorshift generator, so every run sends the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits);
        while out.len() < digits {
            out.push_str(&format!("{:016x}", self.next()));
        }
        out.truncate(digits);
        out
    }
}

const METRICS: [&str; 25] = [
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_load_average_10s",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_memory_cache",
    "container_memory_swap",
    "container_memory_max_usage_bytes",
    "container_memory_failcnt",
    "container_fs_usage_bytes",
    "container_fs_limit_bytes",
    "container_fs_reads_bytes_total",
    "container_fs_writes_bytes_total",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "container_network_receive_packets_total",
    "container_network_transmit_packets_total",
    "container_spec_memory_limit_bytes",
    "container_spec_cpu_shares",
    "container_start_time_seconds",
    "container_last_seen",
];

/// The label sets of `count` series, each sorted by name, with `__name__` first as Prometheus
/// sends it.
fn series_labels(count: usize) -> Vec<Vec<(String, String)>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let containers_per_pod = 4;
    let pods = count.div_ceil(METRICS.len() * containers_per_pod);
    let mut out = Vec::with_capacity(count);
    'all: for p in 0..pods {
        let namespace = format!("team-{:03}", p % 97);
        let uid = format!(
            "{}-{}-{}-{}-{}",
            rng.hex(8),
            rng.hex(4),
            rng.hex(4),
            rng.hex(4),
            rng.hex(12)
        );
        let pod = format!("service-{:03}-{}-{}", p % 97, rng.hex(10), rng.hex(5));
        let node = format!("ip-10-0-{}-{}.eu-west-1.compute.internal", p % 16, p % 251);
        for c in 0..containers_per_pod {
            let container = ["app", "istio-proxy", "log-shipper", "POD"][c].to_owned();
            let id = format!("/kubepods/burstable/pod{uid}/{}", rng.hex(64));
            let image = format!(
                "registry.example.com/{namespace}/{container}@sha256:{}",
                rng.hex(64)
            );
            let name = format!("k8s_{container}_{pod}_{namespace}_{uid}_0");
            for metric in METRICS {
                if out.len() == count {
                    break 'all;
                }
                let mut labels = vec![
                    ("__name__", metric.to_owned()),
                    ("cluster", "prod-eu-west-1".to_owned()),
                    ("container", container.clone()),
                    ("id", id.clone()),
                    ("image", image.clone()),
                    ("instance", format!("10.0.{}.{}:10250", p % 16, p % 251)),
                    ("job", "kubernetes-cadvisor".to_owned()),
                    ("name", name.clone()),
                    ("namespace", namespace.clone()),
                    ("node", node.clone()),
                    ("pod", pod.clone()),
                    ("service", "kubelet".to_owned()),
                ];
                labels[1..].sort();
                out.push(labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            }
        }
    }
    out
}

/// One series' point in a round: a float sample, or a native histogram.
enum Point {
    Float(f64),
    Histogram(Box<Histogram>),
}

/// Snappy-compressed requests for one round: every series once, with this timestamp; with
/// `native_histograms`, the first series of every 25 (one per container) sends a native
/// histogram of 20 buckets (schema 3, integer counts) that grows from round to round.
fn round_payloads(
    labels: &[Vec<(String, String)>],
    batch: usize,
    timestamp: i64,
    round: usize,
    options: &Options,
) -> Vec<Vec<u8>> {
    let point = |i: usize| {
        if !(options.native_histograms && i.is_multiple_of(25)) {
            return Point::Float((i * 1000 + round) as f64 * 1.5);
        }
        let deltas: Vec<i64> = (0..20)
            .map(|b| if b == 0 { 1 + round as i64 } else { b % 3 - 1 })
            .collect();
        let count: i64 = deltas
            .iter()
            .scan(0, |c, d| {
                *c += d;
                Some(*c)
            })
            .sum();
        Point::Histogram(Box::new(Histogram {
            count: Some(histogram::Count::CountInt(count as u64)),
            sum: count as f64 * 1.5,
            schema: 3,
            positive_spans: vec![BucketSpan {
                offset: -4,
                length: 20,
            }],
            positive_deltas: deltas,
            timestamp,
            ..Default::default()
        }))
    };
    labels
        .chunks(batch)
        .map(|chunk| {
            let body = match options.wire {
                Wire::RemoteWrite2 => v2_request(chunk, timestamp, point),
                Wire::RemoteWrite1 => v1_request(chunk, timestamp, point),
                Wire::Otlp => return otlp_request(chunk, timestamp, point),
                Wire::OtlpGzip => return gzipped(&otlp_request(chunk, timestamp, point)),
            };
            snap::raw::Encoder::new().compress_vec(&body).unwrap()
        })
        .collect()
}

/// A remote write 1.0 request: every series spells out its labels.
fn v1_request(
    chunk: &[Vec<(String, String)>],
    timestamp: i64,
    point: impl Fn(usize) -> Point,
) -> Vec<u8> {
    let timeseries = chunk
        .iter()
        .enumerate()
        .map(|(i, labels)| {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match point(i) {
                Point::Float(value) => TimeSeries::from_pairs(&pairs, &[(value, timestamp)]),
                Point::Histogram(histogram) => TimeSeries {
                    histograms: vec![*histogram],
                    ..TimeSeries::from_pairs(&pairs, &[])
                },
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec()
}

/// A remote write 2.0 request, as Prometheus builds one: each distinct string once in the
/// request's symbols (the empty string first), series as references into them.
fn v2_request(
    chunk: &[Vec<(String, String)>],
    timestamp: i64,
    point: impl Fn(usize) -> Point,
) -> Vec<u8> {
    let mut symbols = Symbols::default();
    symbols.reference("");
    let timeseries = chunk
        .iter()
        .enumerate()
        .map(|(i, labels)| {
            let mut series = v2::TimeSeries {
                labels_refs: labels
                    .iter()
                    .flat_map(|(k, v)| [symbols.reference(k), symbols.reference(v)])
                    .collect(),
                ..Default::default()
            };
            match point(i) {
                Point::Float(value) => {
                    series.samples = vec![v2::Sample {
                        value,
                        timestamp,
                        start_timestamp: 0,
                    }]
                }
                Point::Histogram(histogram) => series.histograms = vec![histogram.to_v2()],
            }
            series
        })
        .collect();
    v2::Request {
        symbols: symbols
            .list
            .iter()
            .map(|s| s.as_bytes().to_vec().into())
            .collect(),
        timeseries,
    }
    .encode_to_vec()
}

/// An OTLP `ExportMetricsServiceRequest` as an SDK batches one: one resource and scope, a
/// gauge per metric name with a data point per series (field numbers of opentelemetry-proto's
/// `metrics.proto` and `common.proto`).
fn otlp_request(
    chunk: &[Vec<(String, String)>],
    timestamp: i64,
    point: impl Fn(usize) -> Point,
) -> Vec<u8> {
    use prost::encoding::{bytes, double, fixed64, string};
    let message = |number: u32, body: Vec<u8>, out: &mut Vec<u8>| bytes::encode(number, &body, out);
    let mut metrics: Vec<(&str, Vec<u8>)> = Vec::new();
    for (i, labels) in chunk.iter().enumerate() {
        let Point::Float(value) = point(i) else {
            panic!("--otlp sends floats only\n{USAGE}");
        };
        let mut data_point = Vec::new();
        for (key, text) in labels.iter().filter(|(key, _)| key != "__name__") {
            let mut any_value = Vec::new();
            string::encode(1, text, &mut any_value);
            let mut key_value = Vec::new();
            string::encode(1, key, &mut key_value);
            message(2, any_value, &mut key_value);
            message(7, key_value, &mut data_point);
        }
        fixed64::encode(3, &(timestamp as u64 * 1_000_000), &mut data_point);
        double::encode(4, &value, &mut data_point);
        let name = labels[0].1.as_str();
        let at = match metrics.iter().position(|(known, _)| *known == name) {
            Some(at) => at,
            None => {
                metrics.push((name, Vec::new()));
                metrics.len() - 1
            }
        };
        message(1, data_point, &mut metrics[at].1);
    }
    let mut scope = Vec::new();
    for (name, points) in metrics {
        let mut metric = Vec::new();
        string::encode(1, &name.to_owned(), &mut metric);
        message(5, points, &mut metric);
        message(2, metric, &mut scope);
    }
    let mut resource = Vec::new();
    message(2, scope, &mut resource);
    let mut request = Vec::new();
    message(1, resource, &mut request);
    request
}

/// `body` as one gzip member, at libdeflate's level 6.
fn gzipped(body: &[u8]) -> Vec<u8> {
    let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(6).unwrap());
    let mut out = vec![0; compressor.gzip_compress_bound(body.len())];
    let written = compressor.gzip_compress(body, &mut out).unwrap();
    out.truncate(written);
    out
}

/// A 2.0 request's symbol table as it is built: each string's index, given on first use.
#[derive(Default)]
struct Symbols<'a> {
    list: Vec<&'a str>,
    index: std::collections::HashMap<&'a str, u32>,
}

impl<'a> Symbols<'a> {
    fn reference(&mut self, text: &'a str) -> u32 {
        *self.index.entry(text).or_insert_with(|| {
            self.list.push(text);
            (self.list.len() - 1) as u32
        })
    }
}

/// A keep-alive HTTP/1.1 connection that sends requests and reads their answers.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(address: &str) -> Connection {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends one request; returns the status and the body.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut answer = Vec::new();
        let status = self.send_into(method, path, headers, body, &mut answer);
        (status, answer)
    }

    /// Sends one request and reads the answer's body into `answer`, which keeps its capacity
    /// from one scrape to the next: each chunk is read straight into it, so that the client
    /// copies a 60 MB page once and faults no fresh memory in, and a fast server is not timed
    /// by the client's own copying.
    fn send_into(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        answer: &mut Vec<u8>,
    ) -> u16 {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                chunked = true;
            }
        }
        answer.clear();
        if chunked {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let start = answer.len();
                (&mut self.reader)
                    .take(size as u64)
                    .read_to_end(answer)
                    .unwrap();
                assert_eq!(answer.len(), start + size, "chunk cut short");
                let mut end = [0; 2];
                self.reader.read_exact(&mut end).unwrap();
                if size == 0 {
                    break;
                }
            }
        } else {
            (&mut self.reader)
                .take(length as u64)
                .read_to_end(answer)
                .unwrap();
            assert_eq!(answer.len(), length, "body cut short");
        }
        status
    }
}

/// A server under test: its process, address and write path.
struct Target {
    name: &'static str,
    child: Child,
    /// From spawning the process to its health check's first 200.
    ready_after: Duration,
    health_path: &'static str,
    address: String,
    wire: Wire,
    scrape_path: String,
    _dir: Option<TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `path` answers 200, trying every millisecond; returns how long that took from
/// `started`, the moment the process was spawned.
fn wait_ready(address: &str, path: &str, started: Instant) -> Duration {
    let deadline = started + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(stream) = TcpStream::connect(address) {
            drop(stream);
            let mut connection = Connection::open(address);
            if connection.send("GET", path, &[], &[]).0 == 200 {
                return started.elapsed();
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    panic!("{address}{path} did not become ready");
}

fn start_exporter(binary: &Path, wire: Wire, flags: &[String]) -> Target {
    assert!(
        binary.is_file(),
        "{} missing: build it first (make bench does)",
        binary.display()
    );
    let address = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let child = Command::new(binary)
        .args([
            &format!("--web.listen-address={address}"),
            "--series.ttl=0",
            "--series.max=10000000",
        ])
        .args(flags)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready_after = wait_ready(&address, "/healthz", started);
    Target {
        name: "k8s_exporter",
        child,
        ready_after,
        health_path: "/healthz",
        address,
        wire,
        scrape_path: "/metrics".into(),
        _dir: None,
    }
}

fn start_prometheus() -> Target {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = TempDir(std::env::temp_dir().join(format!("k8s_exporter-bench-prometheus-{stamp}")));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(
        dir.0.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.0.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=error")
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package) must be installed");
    let ready_after = wait_ready(&address, "/-/ready", started);
    let scrape_path = "/federate?match%5B%5D=%7B__name__%3D~%22.%2B%22%7D".to_owned();
    Target {
        name: "prometheus",
        child,
        ready_after,
        health_path: "/-/healthy",
        address,
        wire: Wire::RemoteWrite1,
        scrape_path,
        _dir: Some(dir),
    }
}

/// CPU seconds (user + system) the process has used, all its threads together, those that
/// have ended included: its CPU-time clock, to the nanosecond. `/proc/<pid>/stat` counts in
/// 10 ms ticks, which is a step of 7% for a phase that takes 0.15 CPU-seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls only write to the local they are given a pointer to.
    let (found, read) = unsafe {
        let found = libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock);
        (found, libc::clock_gettime(clock, &mut time))
    };
    assert!(found == 0 && read == 0, "the CPU clock of process {pid}");
    time.tv_sec as f64 + time.tv_nsec as f64 * 1e-9
}

fn resident_bytes(pid: u32) -> f64 {
    status_bytes(pid, "VmRSS:")
}

/// A size from `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in bytes.
fn status_bytes(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

/// Sends every payload over `connections` connections; returns wall seconds, CPU seconds used
/// by the target, and the slowest single request.
fn send_all(target: &Target, payloads: &[Vec<u8>], connections: usize) -> (f64, f64, Duration) {
    let (path, headers) = match target.wire {
        // Prometheus's own receiver.
        Wire::RemoteWrite1 if target.name == "prometheus" => {
            ("/api/v1/write", Wire::RemoteWrite1.headers())
        }
        wire => (wire.path(), wire.headers()),
    };
    let next = AtomicUsize::new(0);
    let slowest = Mutex::new(Duration::ZERO);
    let cpu_before = cpu_seconds(target.child.id());
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..connections {
            scope.spawn(|| {
                let mut connection = Connection::open(&target.address);
                while let Some(payload) = payloads.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let sent = Instant::now();
                    let (status, body) = connection.send("POST", path, headers, payload);
                    assert!(
                        status / 100 == 2,
                        "{}: {status} {}",
                        target.name,
                        String::from_utf8_lossy(&body)
                    );
                    let took = sent.elapsed();
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(took);
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    (
        wall,
        cpu_seconds(target.child.id()) - cpu_before,
        slowest.into_inner().unwrap(),
    )
}

/// What `times` scrapes of the page measured.
struct Scrapes {
    /// The fastest, from request to last byte read.
    best_seconds: f64,
    /// The target's CPU time per scrape, over all of them: unlike wall-clock time, it does
    /// not count time the VM's CPUs were taken by the host (steal).
    cpu_seconds: f64,
    bytes: usize,
}

/// The formats a full scrape is timed in, by the `Accept` header that asks for each.
const FORMATS: [(&str, &str); 5] = [
    ("text 0.0.4", "text/plain;version=0.0.4"),
    ("text 1.0.0", "text/plain;version=1.0.0;escaping=allow-utf-8"),
    ("OpenMetrics 1.0.0", "application/openmetrics-text;version=1.0.0"),
    (
        "protobuf",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
    ),
    ("OpenMetrics 2.0.0", "application/openmetrics-text;version=2.0.0"),
];

/// The `Accept` header of Prometheus 2.42's scrapes, which also send `Accept-Encoding: gzip`.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// How a scrape asks: plain with no `Accept`, or as Prometheus scrapes, with its `Accept` and
/// `Accept-Encoding: gzip` (2.42 and 3.x), or `zstd,gzip` (3.15 with `zstd-scrape`).
#[derive(Clone, Copy, PartialEq)]
enum Asked {
    Plain,
    Gzip,
    Zstd,
}

/// Renders the scrape page `times` times each way `asked`, the ways taken in turn within each
/// round so that a slow spell of the VM falls on all of them alike: the best time of each, its
/// mean CPU per scrape and its bytes.
fn scrape(target: &Target, times: usize, asked: &[Asked]) -> Vec<Scrapes> {
    let mut connection = Connection::open(&target.address);
    let mut body = Vec::new();
    let mut figures: Vec<Scrapes> = asked
        .iter()
        .map(|_| Scrapes {
            best_seconds: f64::INFINITY,
            cpu_seconds: 0.0,
            bytes: 0,
        })
        .collect();
    for _ in 0..times {
        for (how, figures) in asked.iter().zip(&mut figures) {
            let headers: &[(&str, &str)] = match how {
                Asked::Plain => &[],
                Asked::Gzip => &[("Accept", PROMETHEUS_ACCEPT), ("Accept-Encoding", "gzip")],
                Asked::Zstd => &[
                    ("Accept", PROMETHEUS_ACCEPT),
                    ("Accept-Encoding", "zstd,gzip"),
                ],
            };
            let cpu_before = cpu_seconds(target.child.id());
            let started = Instant::now();
            let status = connection.send_into("GET", &target.scrape_path, headers, &[], &mut body);
            assert_eq!(status, 200, "{} scrape", target.name);
            figures.best_seconds = figures.best_seconds.min(started.elapsed().as_secs_f64());
            figures.cpu_seconds += (cpu_seconds(target.child.id()) - cpu_before) / times as f64;
            figures.bytes = body.len();
        }
    }
    figures
}

/// `times` full scrapes in each of [`FORMATS`], the formats taken in turn within each round so
/// that a slow spell of the VM falls on all of them alike: the best time of each, and its mean
/// CPU per scrape.
fn scrape_formats(target: &Target, times: usize) -> Vec<(String, Scrapes)> {
    // Each format plain, then each gzipped.
    let asked: Vec<(String, &str, bool)> = [false, true]
        .into_iter()
        .flat_map(|gzip| {
            FORMATS.iter().map(move |(name, accept)| {
                let name = if gzip {
                    format!("{name} gzip")
                } else {
                    name.to_string()
                };
                (name, *accept, gzip)
            })
        })
        .collect();
    let mut formats: Vec<(String, Scrapes)> = asked
        .iter()
        .map(|(name, ..)| {
            let none = Scrapes {
                best_seconds: f64::INFINITY,
                cpu_seconds: 0.0,
                bytes: 0,
            };
            (name.clone(), none)
        })
        .collect();
    // One connection, as a scraper keeps one.
    let mut connection = Connection::open(&target.address);
    let mut body = Vec::new();
    for _ in 0..times {
        for ((_, accept, gzip), (_, figures)) in asked.iter().zip(&mut formats) {
            let cpu_before = cpu_seconds(target.child.id());
            let started = Instant::now();
            let mut headers = vec![("Accept", *accept)];
            if *gzip {
                headers.push(("Accept-Encoding", "gzip"));
            }
            let status = connection.send_into("GET", &target.scrape_path, &headers, &[], &mut body);
            assert_eq!(status, 200, "{} scrape", target.name);
            figures.best_seconds = figures.best_seconds.min(started.elapsed().as_secs_f64());
            figures.cpu_seconds += (cpu_seconds(target.child.id()) - cpu_before) / times as f64;
            figures.bytes = body.len();
        }
    }
    formats
}

/// The slowest write while scrapes run back to back, against the slowest without them.
fn writes_during_scrapes(target: &Target, payloads: &[Vec<u8>], connections: usize) -> Duration {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut connection = Connection::open(&target.address);
            while !stop.load(Ordering::Relaxed) {
                connection.send("GET", &target.scrape_path, &[], &[]);
            }
        });
        let (_, _, slowest) = send_all(target, payloads, connections);
        stop.store(true, Ordering::Relaxed);
        slowest
    })
}

struct Figures {
    ready_after: Duration,
    /// `VmRSS` of the fresh process before the first write.
    idle_resident_bytes: f64,
    slowest_health_check: Duration,
    new_rate: f64,
    new_cpu_us: f64,
    append_rate: f64,
    append_cpu_us: f64,
    bytes_per_series: f64,
    /// The same once scrapes have run: what a scrape's buffers leave resident.
    bytes_per_series_after_scrapes: f64,
    plain: Scrapes,
    gzip: Scrapes,
    /// As Prometheus 3.15 asks with `zstd-scrape` (our server only).
    zstd: Option<Scrapes>,
    /// Full scrapes in each of [`FORMATS`] (our server only).
    formats: Vec<(String, Scrapes)>,
    slowest_write: Duration,
    slowest_write_while_scraping: Duration,
}

/// The slowest of 100 health checks on an idle server, each on a new connection.
fn slowest_health_check(target: &Target) -> Duration {
    (0..100)
        .map(|_| {
            let started = Instant::now();
            let status = Connection::open(&target.address)
                .send("GET", target.health_path, &[], &[])
                .0;
            assert_eq!(status, 200, "{} health check", target.name);
            started.elapsed()
        })
        .max()
        .unwrap_or_default()
}

fn measure(target: &Target, options: &Options, rounds: &[Vec<Vec<u8>>]) -> Figures {
    let series = options.series as f64;
    thread::sleep(Duration::from_millis(500));
    let baseline_rss = resident_bytes(target.child.id());
    let slowest_health_check = slowest_health_check(target);
    let (wall, cpu, _) = send_all(target, &rounds[0], options.connections);
    let (new_rate, new_cpu_us) = (series / wall, cpu / series * 1e6);
    let (mut wall, mut cpu, mut slowest_write) = (0.0, 0.0, Duration::ZERO);
    for payloads in &rounds[1..=options.append_rounds] {
        let (w, c, s) = send_all(target, payloads, options.connections);
        (wall, cpu, slowest_write) = (wall + w, cpu + c, slowest_write.max(s));
    }
    let appended = series * options.append_rounds as f64;
    let bytes_per_series = (resident_bytes(target.child.id()) - baseline_rss) / series;
    // Prometheus 2.42 knows no zstd: it answers `zstd,gzip` with gzip.
    let asked: &[Asked] = if target.name == "k8s_exporter" {
        &[Asked::Plain, Asked::Gzip, Asked::Zstd]
    } else {
        &[Asked::Plain, Asked::Gzip]
    };
    let mut scrapes = scrape(target, options.scrapes, asked).into_iter();
    let (plain, gzip, zstd) = (
        scrapes.next().unwrap(),
        scrapes.next().unwrap(),
        scrapes.next(),
    );
    let formats = if target.name == "k8s_exporter" {
        scrape_formats(target, options.scrapes)
    } else {
        Vec::new()
    };
    let slowest_write_while_scraping = writes_during_scrapes(
        target,
        &rounds[options.append_rounds + 1],
        options.connections,
    );
    let bytes_per_series_after_scrapes =
        (resident_bytes(target.child.id()) - baseline_rss) / series;
    Figures {
        ready_after: target.ready_after,
        idle_resident_bytes: baseline_rss,
        slowest_health_check,
        new_rate,
        new_cpu_us,
        append_rate: appended / wall,
        append_cpu_us: cpu / appended * 1e6,
        bytes_per_series,
        bytes_per_series_after_scrapes,
        plain,
        gzip,
        zstd,
        formats,
        slowest_write,
        slowest_write_while_scraping,
    }
}

fn print(name: &str, f: &Figures) {
    println!("{name}:");
    println!(
        "  idle         {:>12.1} ms from start to healthy, {:.2} MiB resident, health check {:.2} ms at most",
        ms(f.ready_after),
        f.idle_resident_bytes / (1 << 20) as f64,
        ms(f.slowest_health_check)
    );
    println!(
        "  new series   {:>12.0} samples/s  {:>8.2} CPU-µs/sample ({:.2} CPU-s per million)",
        f.new_rate, f.new_cpu_us, f.new_cpu_us
    );
    println!(
        "  appends      {:>12.0} samples/s  {:>8.2} CPU-µs/sample ({:.2} CPU-s per million)",
        f.append_rate, f.append_cpu_us, f.append_cpu_us
    );
    println!(
        "  memory       {:>12.0} resident bytes/series, {:.0} after scrapes",
        f.bytes_per_series, f.bytes_per_series_after_scrapes
    );
    let zstd = f
        .zstd
        .as_ref()
        .map(|zstd| ("scrape, zstd,gzip as 3.15 asks", zstd));
    for (what, scrapes) in [
        ("scrape, gzip as Prometheus asks", &f.gzip),
        ("scrape, plain", &f.plain),
    ]
    .into_iter()
    .chain(zstd)
    {
        println!(
            "  {what:<32} {:>8.3} s  {:>12} bytes  {:.3} CPU-s per scrape",
            scrapes.best_seconds, scrapes.bytes, scrapes.cpu_seconds
        );
    }
    if let Some((_, text)) = f.formats.first() {
        for (format, scrapes) in &f.formats {
            println!(
                "  format {format:<23} {:>8.3} s  {:>12} bytes  {:.3} CPU-s per scrape  (x{:.2} time, x{:.2} CPU of text 0.0.4)",
                scrapes.best_seconds,
                scrapes.bytes,
                scrapes.cpu_seconds,
                scrapes.best_seconds / text.best_seconds,
                scrapes.cpu_seconds / text.cpu_seconds
            );
        }
    }
    println!(
        "  slowest write {:>10.1} ms alone, {:.1} ms while scrapes run back to back",
        ms(f.slowest_write),
        ms(f.slowest_write_while_scraping)
    );
}

impl Figures {
    /// Each figure by name, and whether more of it is better.
    fn named(&self) -> Vec<(String, f64, bool)> {
        let mut named: Vec<(String, f64, bool)> = [
            ("start to healthy, ms", ms(self.ready_after), false),
            (
                "idle resident MiB",
                self.idle_resident_bytes / (1 << 20) as f64,
                false,
            ),
            (
                "slowest health check, ms",
                ms(self.slowest_health_check),
                false,
            ),
            ("new series, samples/s", self.new_rate, true),
            ("new series, CPU-µs/sample", self.new_cpu_us, false),
            ("appends, samples/s", self.append_rate, true),
            ("appends, CPU-µs/sample", self.append_cpu_us, false),
            ("resident bytes/series", self.bytes_per_series, false),
            (
                "  after scrapes",
                self.bytes_per_series_after_scrapes,
                false,
            ),
            ("scrape, s", self.plain.best_seconds, false),
            ("scrape, CPU-s", self.plain.cpu_seconds, false),
            (
                "scrape gzip as Prometheus, s",
                self.gzip.best_seconds,
                false,
            ),
            (
                "scrape gzip as Prometheus, CPU-s",
                self.gzip.cpu_seconds,
                false,
            ),
            (
                "scrape gzip as Prometheus, bytes",
                self.gzip.bytes as f64,
                false,
            ),
            ("slowest write alone, ms", ms(self.slowest_write), false),
            (
                "slowest write during scrapes, ms",
                ms(self.slowest_write_while_scraping),
                false,
            ),
        ]
        .into_iter()
        .map(|(name, value, more_is_better)| (name.to_owned(), value, more_is_better))
        .collect();
        if let Some(zstd) = &self.zstd {
            named.push(("scrape zstd as 3.15, s".into(), zstd.best_seconds, false));
            named.push(("scrape zstd as 3.15, CPU-s".into(), zstd.cpu_seconds, false));
            named.push((
                "scrape zstd as 3.15, bytes".into(),
                zstd.bytes as f64,
                false,
            ));
        }
        // Each format's scrape, compared trial by trial as the others are.
        for (format, scrapes) in &self.formats {
            named.push((format!("  {format}, s"), scrapes.best_seconds, false));
            named.push((format!("  {format}, CPU-s"), scrapes.cpu_seconds, false));
        }
        named
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The median of sorted values.
fn median(values: &[f64]) -> f64 {
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// `--versus`: the load against `--binary` and `other` in turn, `--trials` times, each on a
/// fresh process, alternating which goes first, so that the machine's drift (this VM's figures
/// move by a third from one minute to the next) falls on both alike. Prints each figure's
/// median for both, and how far `other` is from `--binary`.
fn versus(options: &Options, other: &Path, rounds: &[Vec<Vec<u8>>]) {
    let binaries = [options.binary.as_path(), other];
    let mut runs: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
    for trial in 0..options.trials {
        for which in [trial % 2, 1 - trial % 2] {
            let flags: &[String] = if which == 0 {
                &options.exporter_flags
            } else {
                &[]
            };
            let target = start_exporter(binaries[which], options.wire, flags);
            runs[which].push(measure(&target, options, rounds));
        }
    }
    println!(
        "median [lowest, highest] of {} trials each, alternating:\n  first:  {}\n  second: {}",
        options.trials,
        binaries[0].display(),
        binaries[1].display()
    );
    println!(
        "  {:<34} {:>26} {:>26} {:>14}",
        "", "first", "second", "second is"
    );
    for (i, (name, _, more_is_better)) in runs[0][0].named().into_iter().enumerate() {
        let name = name.as_str();
        let [first, second] = [&runs[0], &runs[1]].map(|figures| {
            let mut values: Vec<f64> = figures.iter().map(|f| f.named()[i].1).collect();
            values.sort_by(f64::total_cmp);
            (median(&values), values[0], values[values.len() - 1])
        });
        let worse = if more_is_better {
            1.0 - second.0 / first.0
        } else {
            second.0 / first.0 - 1.0
        };
        let verdict = if worse > 0.0 { "worse" } else { "better" };
        let spread = |(median, low, high): (f64, f64, f64)| {
            let digits = if median >= 100.0 { 0 } else { 3 };
            format!("{median:.digits$} [{low:.digits$}, {high:.digits$}]")
        };
        println!(
            "  {name:<34} {:>26} {:>26} {:>7.1}% {verdict}",
            spread(first),
            spread(second),
            worse.abs() * 100.0
        );
    }
}

/// Seconds `work` takes.
fn timed(work: impl FnOnce()) -> f64 {
    let started = Instant::now();
    work();
    started.elapsed().as_secs_f64()
}

/// Times each stage in this process on one thread, without HTTP: where the time goes. Each
/// figure is the best of three runs, on a fresh store where the stage needs one.
fn stages(options: &Options, rounds: &[Vec<Vec<u8>>]) {
    use k8s_exporter::expose::negotiate::negotiate;
    use k8s_exporter::expose::{groups, render};
    use k8s_exporter::store::Store;
    use k8s_exporter::write::wire::{Protocol, WriteBatch};
    use k8s_exporter::write::{decode, ingest};
    let series = options.series as f64;
    let report = |what: &str, seconds: f64| {
        println!(
            "  {what:<24} {:>8.3} µs/sample  {:>10.0} samples/s",
            seconds / series * 1e6,
            series / seconds
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut batch = WriteBatch::default();
    let protocol = match options.wire {
        Wire::RemoteWrite1 => Protocol::V1,
        Wire::RemoteWrite2 => Protocol::V2,
        Wire::Otlp => return otlp_stages(rounds, &report, now),
        Wire::OtlpGzip => panic!("--stages reads OTLP without gzip: use --otlp\n{USAGE}"),
    };
    println!("stages (one thread, no HTTP, best of 3):");
    let mut buffer = vec![0u8; 64 << 20];
    report(
        "snappy alone",
        best_of_three(&mut || {
            timed(|| {
                for payload in &rounds[0] {
                    snap::raw::Decoder::new()
                        .decompress(payload, &mut buffer)
                        .unwrap();
                }
            })
        }),
    );
    report(
        "snappy + protobuf",
        best_of_three(&mut || {
            timed(|| {
                for payload in &rounds[0] {
                    decode::decode(payload, protocol, 64 << 20, &mut batch).unwrap();
                }
            })
        }),
    );
    let ingest_round = |store: &Store, round: usize, batch: &mut WriteBatch| {
        timed(|| {
            for payload in &rounds[round] {
                decode::decode(payload, protocol, 64 << 20, batch).unwrap();
                ingest::ingest(store, batch, &WRITE_RULES, now, 0);
            }
        })
    };
    report(
        "decode + ingest, new",
        best_of_three(&mut || ingest_round(&Store::new(10_000_000), 0, &mut batch)),
    );
    let store = Store::new(10_000_000);
    ingest_round(&store, 0, &mut batch);
    let mut round = 0;
    report(
        "decode + ingest, append",
        best_of_three(&mut || {
            round += 1;
            ingest_round(&store, round, &mut batch)
        }),
    );
    report(
        "snapshot",
        best_of_three(&mut || {
            timed(|| {
                drop(store.snapshot());
            })
        }),
    );
    let snapshot = store.snapshot();
    report(
        "render: group and sort",
        best_of_three(&mut || {
            timed(|| {
                groups::family_count(&snapshot);
            })
        }),
    );
    // Rendered to nowhere, as a scrape streams it: a page built in one `Vec` would time the
    // growth of a 60 MB buffer as much as the rendering.
    let mut block_bytes = Vec::new();
    for (format, accept) in FORMATS {
        let negotiated = negotiate(Some(accept));
        report(
            &format!("render {format}"),
            best_of_three(&mut || {
                timed(|| {
                    render::render_to(
                        &snapshot,
                        negotiated,
                        false,
                        &mut block_bytes,
                        std::io::sink(),
                    )
                    .unwrap();
                })
            }),
        );
    }
    // The candidates for gzip, on the page Prometheus asks for first, compressed in the chunks
    // the server compresses it in: bytes and one thread's time for each.
    let page = render::render(&snapshot, negotiate(Some(FORMATS[2].1)), false);
    println!(
        "  gzip of the {} page, {} bytes, in {} KiB chunks:",
        FORMATS[2].0,
        page.len(),
        GZIP_CHUNK >> 10
    );
    for level in 1..=6 {
        let mut bytes = 0;
        let seconds = best_of_three(&mut || {
            timed(|| {
                bytes = page
                    .chunks(GZIP_CHUNK)
                    .map(|chunk| {
                        let mut encoder = flate2::write::GzEncoder::new(
                            Vec::new(),
                            flate2::Compression::new(level),
                        );
                        encoder.write_all(chunk).unwrap();
                        encoder.finish().unwrap().len()
                    })
                    .sum::<usize>();
            })
        });
        println!("    flate2 (zlib-rs) {level}  {seconds:>8.3} s  {bytes:>12} bytes");
    }
    for level in 1..=6 {
        let mut bytes = 0;
        let seconds = best_of_three(&mut || {
            timed(|| {
                let level = libdeflater::CompressionLvl::new(level).unwrap();
                let mut compressor = libdeflater::Compressor::new(level);
                let mut out = vec![0; compressor.gzip_compress_bound(GZIP_CHUNK)];
                bytes = page
                    .chunks(GZIP_CHUNK)
                    .map(|chunk| compressor.gzip_compress(chunk, &mut out).unwrap())
                    .sum::<usize>();
            })
        });
        println!("    libdeflate {level}        {seconds:>8.3} s  {bytes:>12} bytes");
    }
    // The candidates for zstd: a frame starts without a window, so the chunk size matters
    // more than gzip's; each level at three sizes.
    println!("  zstd of the same page, in chunks of 256 KiB / 1 MiB / 4 MiB:");
    for level in 1..=6 {
        let sizes: Vec<String> = [256 << 10, 1 << 20, 4 << 20]
            .into_iter()
            .map(|chunk: usize| {
                let mut bytes = 0;
                let seconds = best_of_three(&mut || {
                    timed(|| {
                        let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
                        let mut out = vec![0; zstd::zstd_safe::compress_bound(chunk)];
                        bytes = page
                            .chunks(chunk)
                            .map(|chunk| compressor.compress_to_buffer(chunk, &mut out).unwrap())
                            .sum::<usize>();
                    })
                });
                format!("{seconds:>6.3} s {bytes:>10} bytes")
            })
            .collect();
        println!("    libzstd {level}  {}", sizes.join("  /  "));
    }
    // The other way to keep zstd's window: one stream whose window carries across chunks,
    // flushed at each, so that the page still leaves as it is made; one thread compresses it.
    for level in 1..=3 {
        let mut bytes = 0;
        let seconds = best_of_three(&mut || {
            timed(|| {
                let mut encoder = zstd::stream::Encoder::new(Vec::new(), level).unwrap();
                for chunk in page.chunks(GZIP_CHUNK) {
                    encoder.write_all(chunk).unwrap();
                    encoder.flush().unwrap();
                }
                bytes = encoder.finish().unwrap().len();
            })
        });
        println!("    libzstd {level}, one stream flushed every 256 KiB  {seconds:>6.3} s {bytes:>10} bytes");
    }
}

/// What `--stages` checks writes against: the server's defaults.
const WRITE_RULES: k8s_exporter::write::ingest::WriteRules =
    k8s_exporter::write::ingest::WriteRules {
        names: k8s_exporter::write::names::NameRules::Utf8,
        max_histogram_buckets: 4096,
    };

/// The fastest of three runs of `run`, each timing itself.
fn best_of_three(run: &mut dyn FnMut() -> f64) -> f64 {
    (0..3).map(|_| run()).fold(f64::INFINITY, f64::min)
}

/// `--stages --otlp`: reading OTLP protobuf alone, then reading and applying to a store, for
/// new series and for appends.
fn otlp_stages(rounds: &[Vec<Vec<u8>>], report: &dyn Fn(&str, f64), now: i64) {
    use k8s_exporter::otlp::model::SpareAttributes;
    use k8s_exporter::otlp::{protobuf, translate};
    use k8s_exporter::store::Store;
    let translation = translate::Translation::default();
    println!("stages (one thread, no HTTP, best of 3):");
    report(
        "OTLP protobuf read",
        best_of_three(&mut || {
            let mut spare = SpareAttributes::default();
            timed(|| {
                for payload in &rounds[0] {
                    let request = protobuf::read_request(payload, spare.take()).unwrap();
                    spare.keep(request.point_attributes);
                }
            })
        }),
    );
    let apply_round = |store: &Store, round: usize| {
        let mut spare = SpareAttributes::default();
        timed(|| {
            for payload in &rounds[round] {
                let request = protobuf::read_request(payload, spare.take()).unwrap();
                translate::apply(store, &request, &WRITE_RULES, &translation, now, 0);
                spare.keep(request.point_attributes);
            }
        })
    };
    report(
        "read + apply, new",
        best_of_three(&mut || apply_round(&Store::new(10_000_000), 0)),
    );
    let store = Store::new(10_000_000);
    apply_round(&store, 0);
    report(
        "read + apply, appends",
        (1..=3)
            .map(|round| apply_round(&store, round))
            .fold(f64::INFINITY, f64::min),
    );
}

/// `--otlp`: the same series and values as remote write 1.0 on a fresh process, and how the
/// OTLP figures compare.
fn compare_with_remote_write(
    options: &Options,
    labels: &[Vec<(String, String)>],
    now: i64,
    otlp: &Figures,
) {
    let options = Options {
        wire: Wire::RemoteWrite1,
        binary: options.binary.clone(),
        versus: None,
        exporter_flags: options.exporter_flags.clone(),
        ..*options
    };
    let rounds: Vec<Vec<Vec<u8>>> = (0..options.append_rounds + 2)
        .map(|round| {
            round_payloads(
                labels,
                options.batch,
                now + round as i64 * 1000,
                round,
                &options,
            )
        })
        .collect();
    let exporter = start_exporter(&options.binary, Wire::RemoteWrite1, &options.exporter_flags);
    let remote_write = measure(&exporter, &options, &rounds);
    drop(exporter);
    print(
        "k8s_exporter, the same load as remote write 1.0",
        &remote_write,
    );
    println!("OTLP against remote write 1.0:");
    println!(
        "  CPU per point         x{:.2} new series, x{:.2} appends",
        otlp.new_cpu_us / remote_write.new_cpu_us,
        otlp.append_cpu_us / remote_write.append_cpu_us
    );
    println!(
        "  resident per series   x{:.2} ({:.0} against {:.0} bytes)",
        otlp.bytes_per_series / remote_write.bytes_per_series,
        otlp.bytes_per_series,
        remote_write.bytes_per_series
    );
}

/// The chunk a scrape page is compressed in.
const GZIP_CHUNK: usize = 256 << 10;

/// A series' value in `own`, the exporter's own page, by its exact name and labels.
fn own_value(own: &str, series: &str) -> f64 {
    own.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {series} on the exporter's own page"))
}

/// `--held-under SIZE`: the binary in a real memory cgroup of SIZE bytes, with no sizing flag
/// (the sizes derive from the cgroup's limit), sent the load's `--series` new cAdvisor series
/// in requests of `--batch`, scraped (gzip, as Prometheus asks) after every 100,000, as
/// prometheus2 scrapes while prometheus1 writes. Prints the series it holds when the memory
/// guard or the derived series limit has refused the rest, and whether it stayed under the
/// limit. Needs root.
fn held_under(options: &Options, labels: &[Vec<(String, String)>], limit: u64, now: i64) {
    let cgroup = cgroup::MemoryCgroup::new("bench", limit);
    let address = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = cgroup
        .command(&options.binary)
        .arg(format!("--web.listen-address={address}"))
        .arg("--series.ttl=0")
        .args(&options.exporter_flags)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&address, "/healthz", started);
    let (mut writer, mut scraper) = (Connection::open(&address), Connection::open(&address));
    let (mut page, mut refused, mut sent) = (Vec::new(), 0, 0);
    for chunk in labels.chunks(options.batch) {
        let body = v1_request(chunk, now, |i| Point::Float(i as f64));
        let body = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let status = loop {
            let (status, _) = writer.send("POST", "/write", Wire::RemoteWrite1.headers(), &body);
            if status != 503 {
                break status;
            }
            thread::sleep(Duration::from_millis(50));
        };
        match status {
            204 => {}
            400 => refused += 1,
            other => panic!("a write answered {other}"),
        }
        let before = sent;
        sent += chunk.len();
        if sent / 100_000 != before / 100_000 || sent == labels.len() {
            let headers = [("Accept", PROMETHEUS_ACCEPT), ("Accept-Encoding", "gzip")];
            let status = scraper.send_into("GET", "/metrics", &headers, &[], &mut page);
            assert_eq!(status, 200);
        }
    }
    let (_, own) = writer.send("GET", "/metrics/exporter", &[], &[]);
    let own = String::from_utf8(own).unwrap();
    let peak = status_bytes(child.id(), "VmHWM:");
    let mib = |bytes: f64| bytes / (1u64 << 20) as f64;
    println!(
        "held under {:.0} MiB: {:.0} series held of {} sent ({refused} requests refused in part); derived --series.max {:.0}; dropped as memory_limit {:.0}, series_limit {:.0}; \
         peak cgroup charge {:.1} MiB, peak resident {:.1} MiB, OOM kills {}",
        mib(limit as f64),
        own_value(&own, "k8s_exporter_series"),
        labels.len(),
        own_value(&own, "k8s_exporter_series_limit"),
        own_value(&own, "k8s_exporter_samples_dropped_total{reason=\"memory_limit\"}"),
        own_value(&own, "k8s_exporter_samples_dropped_total{reason=\"series_limit\"}"),
        mib(cgroup.peak_charge() as f64),
        mib(peak),
        cgroup.oom_kills()
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let options = options();
    let labels = series_labels(options.series);
    let uncompressed: usize = labels
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum::<usize>()
        + labels.len() * 15;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    if let Some(limit) = options.held_under {
        return held_under(&options, &labels, limit, now);
    }
    // The load needs its append rounds and one more (writes during scrapes); `--stages` takes
    // the best of three append rounds, whatever `--append-rounds` says.
    let round_count = if options.stages {
        4
    } else {
        options.append_rounds + 2
    };
    let rounds: Vec<Vec<Vec<u8>>> = (0..round_count)
        .map(|round| {
            let timestamp = now + round as i64 * 1000;
            round_payloads(&labels, options.batch, timestamp, round, &options)
        })
        .collect();
    assert!(
        !options.compare_prometheus || options.wire == Wire::RemoteWrite1,
        "Prometheus 2.42's receiver takes remote write 1.0 only\n{USAGE}"
    );
    let compressed: usize = rounds[0].iter().map(Vec::len).sum();
    println!(
        "load: {}{}, {} series, {} labels each, {:.0} bytes/series uncompressed, {:.0} on the wire; {} per request, {} connections, {} append rounds",
        options.wire.name(),
        if options.native_histograms {
            ", native histograms for 1 series in 25"
        } else {
            ""
        },
        options.series,
        labels[0].len(),
        uncompressed as f64 / options.series as f64,
        compressed as f64 / options.series as f64,
        options.batch,
        options.connections,
        options.append_rounds
    );
    if options.stages {
        return stages(&options, &rounds);
    }
    if let Some(other) = &options.versus {
        return versus(&options, other, &rounds);
    }
    println!("binary: {}", options.binary.display());

    let exporter = start_exporter(&options.binary, options.wire, &options.exporter_flags);
    let ours = measure(&exporter, &options, &rounds);
    drop(exporter);
    print("k8s_exporter", &ours);
    if matches!(options.wire, Wire::Otlp | Wire::OtlpGzip) {
        compare_with_remote_write(&options, &labels, now, &ours);
    }

    if options.compare_prometheus {
        let prometheus = start_prometheus();
        let theirs = measure(&prometheus, &options, &rounds);
        drop(prometheus);
        print("prometheus (remote-write receiver, /federate)", &theirs);
        println!("ratios (k8s_exporter vs prometheus):");
        println!(
            "  new series samples/s  x{:.1}, CPU per sample 1/{:.1}",
            ours.new_rate / theirs.new_rate,
            theirs.new_cpu_us / ours.new_cpu_us
        );
        println!(
            "  appends samples/s     x{:.1}, CPU per sample 1/{:.1}",
            ours.append_rate / theirs.append_rate,
            theirs.append_cpu_us / ours.append_cpu_us
        );
        println!(
            "  memory per series     1/{:.1}",
            theirs.bytes_per_series / ours.bytes_per_series
        );
        println!(
            "  full scrape           x{:.1} faster",
            theirs.plain.best_seconds / ours.plain.best_seconds
        );
        println!(
            "  gzip scrape as Prometheus asks  x{:.1} faster, x{:.3} the bytes, x{:.2} the CPU",
            theirs.gzip.best_seconds / ours.gzip.best_seconds,
            ours.gzip.bytes as f64 / theirs.gzip.bytes as f64,
            ours.gzip.cpu_seconds / theirs.gzip.cpu_seconds
        );
        if let Some(zstd) = &ours.zstd {
            println!(
                "  zstd scrape as 3.15 asks (zstd,gzip)  x{:.1} faster than its gzip /federate, x{:.3} its bytes; x{:.2} the time and x{:.2} the CPU of our gzip scrape",
                theirs.gzip.best_seconds / zstd.best_seconds,
                zstd.bytes as f64 / theirs.gzip.bytes as f64,
                zstd.best_seconds / ours.gzip.best_seconds,
                zstd.cpu_seconds / ours.gzip.cpu_seconds
            );
        }
        for (format, scrapes) in &ours.formats {
            let federate = if format.ends_with("gzip") {
                &theirs.gzip
            } else {
                &theirs.plain
            };
            println!(
                "  full scrape, {format:<23} x{:.1} faster than /federate",
                federate.best_seconds / scrapes.best_seconds
            );
        }
    }
}
