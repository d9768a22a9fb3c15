//! The `make static` binaries, amd64 and arm64, run in an empty root as an unprivileged user
//! and as PID 1, as they will in the `FROM scratch` image: no `/etc`, no `/proc`, no `/tmp`, no
//! shared libraries. One test body runs against either binary: the one of this machine's
//! architecture directly, the other under Debian's `qemu-user-static`, copied into the root
//! beside it (there is no binfmt_misc to find it outside the root).

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_exporter::write::proto::v2;
use prost::Message;
use serde_json::json;

use crate::support::tls::{https_get, Pki};
use crate::support::{
    elf_machine_and_interpreter, now_ms, only_child, sample_value, series, snappy,
    static_binary_for, upstream, write_request, Arch, Exporter, REMOTE_WRITE_V2_HEADERS,
};

/// The largest a static binary may be: 4.5 MiB, under a tenth of a typical Go exporter.
const MAX_STATIC_BINARY_BYTES: u64 = 4608 << 10;

/// The formats a scraper negotiates, each read back from its gzipped page.
const FORMATS: [&str; 3] = [
    "text/plain;version=0.0.4",
    "application/openmetrics-text;version=1.0.0",
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
];

/// A fresh folder holding only the binary (and, for another architecture, the emulator that
/// runs it), removed when dropped.
struct EmptyRoot {
    path: PathBuf,
    arch: Arch,
}

impl EmptyRoot {
    fn for_arch(arch: Arch) -> EmptyRoot {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "k8s_exporter-root-{}-{}-{stamp}",
            arch.name(),
            std::process::id()
        ));
        std::fs::create_dir(&path).unwrap();
        std::fs::copy(static_binary_for(arch), path.join("k8s_exporter")).unwrap();
        if let Some(emulator) = arch.emulator() {
            std::fs::copy(emulator, path.join("emulator")).unwrap();
        }
        EmptyRoot { path, arch }
    }

    /// `/k8s_exporter` with `flags`, chrooted into the root as uid 65534, in a new PID namespace
    /// that makes it PID 1, as in a container.
    fn command(&self) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(["--pid", "--fork", "chroot", "--userspec=65534:65534"])
            .arg(&self.path);
        if self.arch.emulator().is_some() {
            command.arg("/emulator");
        }
        command.arg("/k8s_exporter");
        command
    }
}

impl Drop for EmptyRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[test]
fn static_binaries_are_small_static_and_of_their_architecture() {
    for arch in [Arch::Amd64, Arch::Arm64] {
        let binary = static_binary_for(arch);
        let size = std::fs::metadata(&binary).unwrap().len();
        assert!(
            size <= MAX_STATIC_BINARY_BYTES,
            "{}: {size} bytes, over 4.5 MiB",
            arch.name()
        );
        assert_eq!(
            elf_machine_and_interpreter(&binary),
            (arch.elf_machine(), false),
            "{}: the machine type, and no program interpreter",
            arch.name()
        );
    }
}

#[test]
fn amd64_binary_serves_from_an_empty_root_as_nobody_and_pid_1() {
    serves_from_an_empty_root(Arch::Amd64);
}

#[test]
fn arm64_binary_serves_from_an_empty_root_as_nobody_and_pid_1() {
    serves_from_an_empty_root(Arch::Arm64);
}

/// Everything a scratch image must do, on the binary of `arch`: serve every way in and out in
/// plain HTTP, then TLS from a web config, and stop cleanly on SIGTERM each time.
fn serves_from_an_empty_root(arch: Arch) {
    let root = EmptyRoot::for_arch(arch);
    let entries = std::fs::read_dir(&root.path).unwrap().count();
    let expected = if arch.emulator().is_some() { 2 } else { 1 };
    assert_eq!(
        entries, expected,
        "the root holds the binary (and its emulator) and nothing else"
    );

    let mut exporter = Exporter::start_command(root.command(), &[]);
    let exporter_pid = pid_1_as_nobody(&exporter);
    assert_eq!(exporter.get("/healthz").status, 200);
    writes_every_protocol(&exporter);
    for accept in FORMATS {
        scrape_gzipped_holds_every_series(&exporter, accept);
    }
    let own = exporter.get("/metrics/exporter").text();
    assert!(
        !own.contains("process_"),
        "no /proc in the empty root, so no process metrics"
    );
    let build_info = own
        .lines()
        .find(|line| line.starts_with("k8s_exporter_build_info{"))
        .unwrap_or_else(|| panic!("no build_info in\n{own}"));
    let expected = format!("arch=\"{}\",os=\"linux\"", arch.name());
    assert!(build_info.contains(&expected), "{build_info}");
    let status = exporter.signal_pid_and_wait(exporter_pid, "TERM", Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM stops PID 1 cleanly in the empty root"
    );

    // TLS from a web config in the root, as a Secret is mounted into the container.
    let pki = Pki::new(&root.path);
    let config = "tls_server_config:\n  cert_file: /server.crt\n  key_file: /server.key\n";
    std::fs::write(root.path.join("web.yml"), config).unwrap();
    let mut exporter = Exporter::start_command(root.command(), &["--web.config.file=/web.yml"]);
    let exporter_pid = pid_1_as_nobody(&exporter);
    let client = pki.client(false);
    let healthz = https_get(&exporter, &client, "/healthz", None).unwrap();
    assert_eq!((healthz.status, healthz.text().as_str()), (200, "ok\n"));
    let own = https_get(&exporter, &client, "/metrics/exporter", None).unwrap();
    assert!(own.text().contains("k8s_exporter_build_info{"), "{own:?}");
    assert_eq!(
        exporter.get("/healthz").status,
        400,
        "plain HTTP to the TLS port"
    );
    let status = exporter.signal_pid_and_wait(exporter_pid, "TERM", Duration::from_secs(20));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM stops the TLS server cleanly"
    );
}

/// The exporter's PID outside its namespace, after checking that it is PID 1 inside and runs
/// as uid 65534.
fn pid_1_as_nobody(exporter: &Exporter) -> u32 {
    let exporter_pid = only_child(exporter.pid());
    let status = std::fs::read_to_string(format!("/proc/{exporter_pid}/status")).unwrap();
    let ns_pid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        ns_pid.ends_with("\t1"),
        "PID 1 in its namespace: {ns_pid:?}"
    );
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534\t")),
        "runs as uid 65534"
    );
    exporter_pid
}

/// One series each by remote write 1.0, remote write 2.0 and OTLP/HTTP protobuf.
fn writes_every_protocol(exporter: &Exporter) {
    let now = now_ms();
    let v1 = write_request(vec![series(
        &[("__name__", "up"), ("job", "scratch")],
        &[(1.0, now)],
    )]);
    assert_eq!(exporter.write(&v1).status, 204);

    let symbols = ["", "__name__", "scratch_requests_total", "job", "scratch"];
    let v2 = v2::Request {
        symbols: symbols
            .iter()
            .map(|s| s.as_bytes().to_vec().into())
            .collect(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![v2::Sample {
                value: 7.0,
                timestamp: now,
                start_timestamp: 0,
            }],
            ..Default::default()
        }],
    };
    let answer = exporter.request(
        "POST",
        "/write",
        &REMOTE_WRITE_V2_HEADERS,
        &snappy(&v2.encode_to_vec()),
    );
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(
        answer.header("X-Prometheus-Remote-Write-Samples-Written"),
        Some("1")
    );

    let otlp = upstream::otlp_request(json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "scratch"}}]},
        "scopeMetrics": [{"metrics": [{"name": "scratch_temperature", "gauge": {
            "dataPoints": [{"asDouble": 3.5, "timeUnixNano": format!("{now}000000")}]}}]}],
    }]}));
    let answer = exporter.request(
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        &otlp,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(upstream::otlp_response(&answer.body)
        .get("partialSuccess")
        .is_none());
}

/// The page in `accept`, gzipped and zstd-compressed, reads back (with flate2, not the server's
/// libdeflate, and libzstd's decoder) as the plain page, and holds the three series `writes_every_protocol` wrote.
fn scrape_gzipped_holds_every_series(exporter: &Exporter, accept: &str) {
    let plain = exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
    let zipped = exporter.request(
        "GET",
        "/metrics",
        &[("Accept", accept), ("Accept-Encoding", "gzip")],
        &[],
    );
    assert_eq!(zipped.status, 200, "{accept}");
    assert_eq!(zipped.header("Content-Encoding"), Some("gzip"), "{accept}");
    let mut unzipped = Vec::new();
    flate2::read::MultiGzDecoder::new(&zipped.body[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert!(unzipped == plain.body, "{accept}: not the plain page");
    // zstd too, as Prometheus 3.15 asks, read back by libzstd's streaming decoder.
    let zstd = exporter.request(
        "GET",
        "/metrics",
        &[("Accept", accept), ("Accept-Encoding", "zstd,gzip")],
        &[],
    );
    assert_eq!(zstd.header("Content-Encoding"), Some("zstd"), "{accept}");
    let mut unzstd = Vec::new();
    zstd::stream::read::Decoder::new(&zstd.body[..])
        .unwrap()
        .read_to_end(&mut unzstd)
        .unwrap();
    assert!(unzstd == plain.body, "{accept}: zstd, not the plain page");

    let expected = [
        ("up", "up{job=\"scratch\"}", 1.0),
        (
            "scratch_requests_total",
            "scratch_requests_total{job=\"scratch\"}",
            7.0,
        ),
        (
            "scratch_temperature",
            "scratch_temperature{job=\"scratch\"}",
            3.5,
        ),
    ];
    if accept.starts_with("application/vnd.google.protobuf") {
        let families = upstream::decode_protobuf_page(&unzipped);
        for (family, _, value) in expected {
            let found = families
                .iter()
                .find(|f| f["name"] == family)
                .unwrap_or_else(|| panic!("{family} not on the protobuf page: {families:?}"));
            let metric = &found["metric"][0];
            let read = ["gauge", "untyped", "counter"]
                .iter()
                .find_map(|kind| metric[kind]["value"].as_f64());
            assert_eq!(read, Some(value), "{family}: {found}");
        }
    } else {
        let page = String::from_utf8(unzipped).unwrap();
        for (_, line, value) in expected {
            assert_eq!(sample_value(&page, line), Some(value), "{accept}\n{page}");
        }
    }
}
