//! The `make static` binary runs in an empty root as an unprivileged user, as it will in a
//! `FROM scratch` image: no `/etc`, no `/proc`, no `/tmp`, no shared libraries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{now_ms, sample_value, series, static_binary, write_request, Exporter};

/// The largest the static binary may be: a tenth of a typical Go exporter.
const MAX_STATIC_BINARY_BYTES: u64 = 4 << 20;

/// A fresh folder holding only the binary, removed when dropped.
struct EmptyRoot(PathBuf);

impl EmptyRoot {
    fn with_binary(binary: &Path) -> EmptyRoot {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root =
            std::env::temp_dir().join(format!("k8s_exporter-root-{}-{stamp}", std::process::id()));
        std::fs::create_dir(&root).unwrap();
        std::fs::copy(binary, root.join("k8s_exporter")).unwrap();
        EmptyRoot(root)
    }
}

impl Drop for EmptyRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn static_binary_is_small() {
    let size = std::fs::metadata(static_binary()).unwrap().len();
    assert!(
        size <= MAX_STATIC_BINARY_BYTES,
        "static binary is {size} bytes, over 4 MiB"
    );
}

/// The one child process of `pid`.
fn only_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<u32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    children[0]
}

#[test]
fn static_binary_serves_from_an_empty_root_as_nobody_and_pid_1() {
    let root = EmptyRoot::with_binary(&static_binary());
    let entries: Vec<_> = std::fs::read_dir(&root.0).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "the root holds the binary and nothing else"
    );

    // A new PID namespace makes the exporter PID 1, as in a container.
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "chroot", "--userspec=65534:65534"])
        .arg(&root.0)
        .arg("/k8s_exporter");
    let mut exporter = Exporter::start_command(command, &[]);
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

    assert_eq!(exporter.get("/healthz").status, 200);
    let request = write_request(vec![series(
        &[("__name__", "up"), ("job", "scratch")],
        &[(1.0, now_ms())],
    )]);
    assert_eq!(exporter.write(&request).status, 204);
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"scratch\"}"),
        Some(1.0)
    );
    let own = exporter.get("/metrics/exporter");
    assert_eq!(own.status, 200);
    assert!(
        !own.text().contains("process_"),
        "no /proc in the empty root, so no process metrics"
    );

    let status = exporter.signal_pid_and_wait(exporter_pid, "TERM", Duration::from_secs(8));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM stops PID 1 cleanly in the empty root"
    );
}
