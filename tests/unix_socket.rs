//! `--web.listen-address=unix:/path`: a Unix socket beside the TCP port, as a scraping
//! Prometheus in the same pod reaches it through a shared volume (`__unix_socket__`).
//! Prometheus 2.42 cannot scrape a socket, so curl and Python's `http.client` are the clients:
//! a scrape and a remote write through the socket, basic auth and TLS on it, its file mode, a
//! stale socket from a crash replaced, and the file removed on a clean stop.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use prost::Message;

use crate::support::peers::TempDir;
use crate::support::tls::Pki;
use crate::support::{
    now_ms, run_with_stdin_bytes, series, snappy, write_request, Exporter, BINARY,
    REMOTE_WRITE_HEADERS,
};

const USER: &str = "prometheus";
const PASSWORD: &str = "s3cret";

fn curl(socket: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--unix-socket",
        ])
        .arg(socket)
        .args(args)
        .output()
        .expect("curl")
}

/// The status line's code and the body of a curl run with `--write-out`.
fn status_and_body(output: &Output) -> (u16, String) {
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

/// Python's `http.client` over the socket: a GET of `path`, answered with the page parsed by
/// `prometheus_client`'s text parser, one `name value` line per sample.
const PYTHON_SCRAPE: &str = r#"
import http.client, socket, sys
from prometheus_client.parser import text_string_to_metric_families
class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[1])
connection = UnixConnection("localhost")
connection.request("GET", "/metrics")
answer = connection.getresponse()
assert answer.status == 200, answer.status
for family in text_string_to_metric_families(answer.read().decode()):
    for sample in family.samples:
        print(sample.name, sample.value)
"#;

fn socket_in(dir: &TempDir) -> PathBuf {
    dir.0.join("k8s_exporter.sock")
}

fn remote_write_through(socket: &Path, name: &str, value: f64) -> u16 {
    let body = snappy(
        &write_request(vec![series(
            &[("__name__", name), ("job", "sidecar")],
            &[(value, now_ms())],
        )])
        .encode_to_vec(),
    );
    let socket = socket.display().to_string();
    let headers: Vec<String> = REMOTE_WRITE_HEADERS
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let mut args = vec!["--silent", "--show-error", "--unix-socket", &socket];
    for header in &headers {
        args.extend(["-H", header.as_str()]);
    }
    args.extend([
        "--data-binary",
        "@-",
        "--write-out",
        "\n%{http_code}",
        "http://localhost/write",
    ]);
    status_and_body(&run_with_stdin_bytes("curl", &args, &body)).0
}

#[test]
fn a_scrape_and_a_remote_write_go_through_the_socket_which_a_clean_stop_removes() {
    let dir = TempDir::new("unix-socket");
    let socket = socket_in(&dir);
    // A socket file left by a crashed server: bound, then its listener gone.
    drop(UnixListener::bind(&socket).unwrap());
    let mut exporter =
        Exporter::start(&[&format!("--web.listen-address=unix:{}", socket.display())]);
    let metadata = std::fs::metadata(&socket).unwrap();
    assert!(
        metadata.file_type().is_socket(),
        "the stale file was replaced"
    );
    assert_eq!(metadata.permissions().mode() & 0o777, 0o660);

    assert_eq!(
        remote_write_through(&socket, "sidecar_temperature", 21.5),
        204
    );
    let output = run_with_stdin_bytes(
        "python3",
        &["-c", PYTHON_SCRAPE, socket.to_str().unwrap()],
        b"",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.contains("sidecar_temperature 21.5"), "{page}");
    // The TCP port serves the same store.
    assert!(exporter
        .get("/metrics")
        .text()
        .contains("sidecar_temperature"));
    // Every endpoint: the exporter's own page, zstd-compressed.
    let (status, _) = status_and_body(&curl(
        &socket,
        &[
            "--write-out",
            "\n%{http_code}",
            "-H",
            "Accept-Encoding: zstd",
            "-o",
            "/dev/null",
            "http://localhost/metrics/exporter",
        ],
    ));
    assert_eq!(status, 200);

    let status = exporter.signal_and_wait("TERM", Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "a clean stop removes the socket file");
}

#[test]
fn a_live_socket_is_not_taken_and_the_mode_is_a_flag() {
    let dir = TempDir::new("unix-socket-live");
    let socket = socket_in(&dir);
    let address = format!("--web.listen-address=unix:{}", socket.display());
    let _first = Exporter::start(&[&address, "--web.unix-socket-mode=0600"]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = Command::new(BINARY)
        .args(["--web.listen-address=127.0.0.1:0", &address])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("listening on it already"), "{said}");
    assert!(socket.exists(), "the live server's socket stays");
    // A start that fails on a later address leaves no socket of its own behind.
    let other = dir.0.join("other.sock");
    let failed = Command::new(BINARY)
        .arg(format!("--web.listen-address=unix:{}", other.display()))
        .arg("--web.listen-address=127.0.0.1:notaport")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(!other.exists(), "the failed start removed its socket");
}

#[test]
fn basic_auth_and_tls_work_the_same_on_the_socket() {
    let dir = TempDir::new("unix-socket-tls");
    let socket = socket_in(&dir);
    let pki = Pki::new(&dir.0);
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let config = dir.0.join("web.yml");
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {USER}: {hash}\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    )
    .unwrap();
    let _exporter = Exporter::start(&[
        &format!("--web.listen-address=unix:{}", socket.display()),
        &format!("--web.config.file={}", config.display()),
    ]);
    let ca = pki.ca.display().to_string();
    let get = |extra: &[&str]| {
        let mut args = vec!["--cacert", &ca, "--write-out", "\n%{http_code}"];
        args.extend(extra);
        args.push("https://localhost/metrics");
        status_and_body(&curl(&socket, &args))
    };
    assert_eq!(get(&[]).0, 401, "no credentials");
    assert_eq!(get(&["--user", &format!("{USER}:wrong")]).0, 401);
    let (status, body) = get(&["--user", &format!("{USER}:{PASSWORD}")]);
    assert_eq!(status, 200, "{body}");
    // Plain HTTP on the TLS socket gets Go's answer, as on TCP.
    let plain = status_and_body(&curl(
        &socket,
        &["--write-out", "\n%{http_code}", "http://localhost/metrics"],
    ));
    assert_eq!(plain.0, 400);
    assert!(plain.1.contains("HTTPS server"), "{}", plain.1);
}
