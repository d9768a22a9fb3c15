//! Running it: flags, environment, expiry, signals.

use std::process::Command;
use std::time::Duration;

use crate::support::{
    eventually, now_ms, sample_value, series, write_request, Arch, Exporter, BINARY,
};

#[test]
fn series_expire_after_the_ttl_by_receive_time() {
    let exporter = Exporter::start(&["--series.ttl=1s"]);
    // An old sample timestamp does not matter: expiry counts from when it was received.
    let old = now_ms() - 3_600_000;
    exporter.write(&write_request(vec![series(
        &[("__name__", "m"), ("pod", "p")],
        &[(1.0, old)],
    )]));
    assert_eq!(sample_value(&exporter.metrics(), "m{pod=\"p\"}"), Some(1.0));
    eventually(Duration::from_secs(10), "the series to expire", || {
        sample_value(&exporter.metrics(), "m{pod=\"p\"}")
            .is_none()
            .then_some(())
    });
    assert_eq!(
        exporter.exporter_value("k8s_exporter_series_removed_total{reason=\"expired\"}"),
        Some(1.0)
    );
    assert_eq!(exporter.exporter_value("k8s_exporter_series"), Some(0.0));
    assert_eq!(
        exporter.exporter_value("k8s_exporter_series_ttl_seconds"),
        Some(1.0)
    );
}

#[test]
fn a_series_written_again_stays() {
    let exporter = Exporter::start(&["--series.ttl=2s"]);
    let write = |value: f64| {
        exporter.write(&write_request(vec![series(
            &[("__name__", "m")],
            &[(value, now_ms())],
        )]));
    };
    for round in 0..8 {
        write(round as f64);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        sample_value(&exporter.metrics(), "m"),
        Some(7.0),
        "written every 0.5s, kept past 2s"
    );
}

#[test]
fn sigterm_and_sigint_stop_gracefully_with_exit_0() {
    for signal in ["TERM", "INT"] {
        let mut exporter = Exporter::start(&[]);
        assert_eq!(exporter.get("/healthz").status, 200);
        let status = exporter.signal_and_wait(signal, Duration::from_secs(8));
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        exporter.wait_for_log("k8s_exporter stopped", Duration::from_secs(1));
    }
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    for (args, flag) in [
        (vec!["--series.ttl=often"], "--series.ttl"),
        (vec!["--write.max-bytes=huge"], "--write.max-bytes"),
        (vec!["--log.format=xml"], "--log.format"),
        (vec!["--web.threads=0"], "--web.threads"),
    ] {
        let output = Command::new(BINARY).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(flag), "{stderr:?} should name {flag}");
    }
}

#[test]
fn unusable_listen_address_exits_1_with_a_reason() {
    let output = Command::new(BINARY)
        .arg("--web.listen-address=256.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("cannot listen"));
}

#[test]
fn version_prints_and_exits_0() {
    let output = Command::new(BINARY).arg("--version").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("k8s_exporter {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    let platform = format!("platform linux/{})", Arch::host().name());
    assert!(stdout.trim_end().ends_with(&platform), "{stdout}");
}

#[test]
fn flags_come_from_the_environment_too() {
    let mut command = Command::new(BINARY);
    command
        .env("K8S_EXPORTER_WEB_TELEMETRY_PATH", "/from-env")
        .env("K8S_EXPORTER_LOG_FORMAT", "json");
    let mut exporter = Exporter::start_command(command, &[]);
    assert_eq!(exporter.get("/from-env").status, 200);
    assert_eq!(exporter.get("/metrics").status, 404);
    exporter.signal_and_wait("TERM", Duration::from_secs(8));
}
