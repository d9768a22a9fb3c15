//! `--web.config.file`: TLS with client certificates and basic auth, against our own client and
//! against the real Prometheus sending remote write (and scraping) over TLS with basic auth.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::ServerName;
use serde_json::json;

use crate::support::peers::{prometheus, query, TempDir};
use crate::support::tls::{https_get, Pki, DEFAULT_NOT_AFTER, ROTATED_NOT_AFTER_SECONDS};
use crate::support::{eventually, parse_response, sample_value, Exporter};

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// An exporter serving TLS that requires client certificates, with one basic-auth user.
fn secured_exporter(dir: &Path, pki: &Pki) -> Exporter {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    // The server's files are named relative to the configuration file, the CA's absolutely.
    let relative = |path: &Path| path.file_name().unwrap().to_str().unwrap().to_owned();
    let config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS12\nbasic_auth_users:\n  {USER}: {hash}\n",
        relative(&pki.server_cert),
        relative(&pki.server_key),
        pki.ca.display(),
    );
    let path = dir.join("web.yml");
    std::fs::write(&path, config).unwrap();
    Exporter::start_static(&[&format!("--web.config.file={}", path.display())])
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[test]
fn tls_client_certificates_and_basic_auth_guard_every_endpoint_but_healthz() {
    let dir = TempDir::new("tls");
    let pki = Pki::new(&dir.0);
    let exporter = secured_exporter(&dir.0, &pki);
    let client = pki.client(true);
    let good = basic(USER, PASSWORD);

    let healthz = https_get(&exporter, &client, "/healthz", None).unwrap();
    assert_eq!((healthz.status, healthz.text().as_str()), (200, "ok\n"));
    let paths = [
        "/metrics",
        "/metrics/exporter",
        "/",
        "/write",
        "/v1/metrics",
        "/api/v1/otlp/v1/metrics",
    ];
    for path in paths {
        for authorization in [
            None,
            Some(basic(USER, "wrong")),
            Some(basic("mallory", PASSWORD)),
        ] {
            let response = https_get(&exporter, &client, path, authorization.as_deref()).unwrap();
            assert_eq!(response.status, 401, "{path} {authorization:?}");
            assert_eq!(
                response.header("WWW-Authenticate"),
                Some("Basic realm=\"k8s_exporter\", charset=\"UTF-8\"")
            );
            assert_eq!(response.text().lines().count(), 1);
        }
    }
    let page = https_get(&exporter, &client, "/metrics/exporter", Some(&good)).unwrap();
    assert_eq!(page.status, 200);
    for certificate in ["server", "client_ca"] {
        let series = format!(
            "k8s_exporter_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}}"
        );
        assert_eq!(sample_value(&page.text(), &series), Some(DEFAULT_NOT_AFTER));
    }
    assert_eq!(
        sample_value(
            &page.text(),
            "k8s_exporter_http_errors_total{reason=\"unauthorized\"}"
        ),
        Some(3.0 * paths.len() as f64)
    );

    // No client certificate: the handshake fails, and is counted.
    assert!(https_get(&exporter, &pki.client(false), "/healthz", None).is_err());
    // Plain HTTP to the TLS port: told so, as Go's servers do, then closed.
    let mut plain = TcpStream::connect(&exporter.address).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    plain.read_to_end(&mut raw).unwrap();
    let response = parse_response(&raw);
    assert_eq!(response.status, 400);
    assert!(response.text().contains("HTTP request to an HTTPS server"));

    drop(plain);
    // Counted once the server has let go of each connection.
    eventually(
        Duration::from_secs(10),
        "two failed handshakes counted",
        || {
            let page = https_get(&exporter, &client, "/metrics/exporter", Some(&good)).ok()?;
            let series = "k8s_exporter_http_errors_total{reason=\"tls_handshake\"}";
            (sample_value(&page.text(), series) == Some(2.0)).then_some(())
        },
    );
}

#[test]
fn prometheus_remote_writes_and_scrapes_over_tls_with_basic_auth() {
    let dir = TempDir::new("tls-prometheus");
    let pki = Pki::new(&dir.0);
    let exporter = secured_exporter(&dir.0, &pki);
    let tls_config = json!({
        "ca_file": pki.ca,
        "cert_file": pki.client_cert,
        "key_file": pki.client_key,
        "server_name": "127.0.0.1",
    });
    let basic_auth = json!({"username": USER, "password": PASSWORD});
    let config = json!({
        "global": {"scrape_interval": "1s", "external_labels": {"sender": "tls"}},
        "scrape_configs": [
            {
                "job_name": "bridge",
                "honor_labels": true,
                "scheme": "https",
                "tls_config": tls_config,
                "basic_auth": basic_auth,
                "static_configs": [{"targets": [exporter.address]}],
            },
        ],
        "remote_write": [{
            "url": format!("https://{}/write", exporter.address),
            "tls_config": tls_config,
            "basic_auth": basic_auth,
            "queue_config": {"batch_send_deadline": "200ms", "min_backoff": "50ms", "max_backoff": "200ms"},
        }],
    });
    let prometheus = prometheus("sender", &config, &dir.0);

    let client = pki.client(true);
    let good = basic(USER, PASSWORD);
    // Prometheus scrapes the exporter over TLS with basic auth...
    eventually(Duration::from_secs(30), "the scrape over TLS", || {
        let up = query(&prometheus, "up{job=\"bridge\"}");
        (up.values().next().map(String::as_str) == Some("1")).then_some(())
    });
    // ...and that scrape's `up` comes back by remote write, over TLS with basic auth.
    eventually(Duration::from_secs(30), "remote write over TLS", || {
        let page = https_get(&exporter, &client, "/metrics", Some(&good)).ok()?;
        let up = format!(
            "up{{instance=\"{}\",job=\"bridge\",sender=\"tls\"}}",
            exporter.address
        );
        (sample_value(&page.text(), &up) == Some(1.0)).then_some(())
    });
    let page = https_get(&exporter, &client, "/metrics/exporter", Some(&good)).unwrap();
    let text = page.text();
    assert_eq!(
        sample_value(&text, "k8s_exporter_write_requests_total{code=\"400\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample_value(
            &text,
            "k8s_exporter_http_errors_total{reason=\"unauthorized\"}"
        ),
        Some(0.0)
    );
    let written = sample_value(&text, "k8s_exporter_write_requests_total{code=\"204\"}");
    assert!(written > Some(0.0));

    // The server certificate rotated in place: new connections get it, and Prometheus goes on
    // writing and scraping.
    let before = served_certificate(&exporter, &client);
    pki.rotate_server_certificate();
    eventually(Duration::from_secs(5), "the rotated certificate", || {
        (served_certificate(&exporter, &client) != before).then_some(())
    });
    eventually(Duration::from_secs(30), "writes after the rotation", || {
        let page = https_get(&exporter, &client, "/metrics/exporter", Some(&good)).ok()?;
        let now = sample_value(
            &page.text(),
            "k8s_exporter_write_requests_total{code=\"204\"}",
        );
        (now > written.map(|w| w + 3.0)).then_some(())
    });
    let scrapes = |page: &str| sample_value(page, "k8s_exporter_scrapes_total");
    let page = https_get(&exporter, &client, "/metrics/exporter", Some(&good)).unwrap();
    let scraped = scrapes(&page.text());
    eventually(
        Duration::from_secs(30),
        "scrapes after the rotation",
        || {
            let page = https_get(&exporter, &client, "/metrics/exporter", Some(&good)).ok()?;
            (scrapes(&page.text()) > scraped.map(|s| s + 2.0)).then_some(())
        },
    );
    let up = query(&prometheus, "up{job=\"bridge\"}");
    assert_eq!(up.values().next().map(String::as_str), Some("1"));
}

/// Python's `ssl` (OpenSSL) as an independent TLS client: connects with `versions` (`TLSv1_2`,
/// `TLSv1_3`) as its only ones, with `cipher` for TLS 1.2 and the key exchange on `curve`, and
/// asks for `/healthz`. Prints the version and cipher agreed, or the handshake's error.
fn python_tls_client(
    exporter: &Exporter,
    ca: &Path,
    version: &str,
    cipher: &str,
    curve: &str,
) -> String {
    let (host, port) = exporter.address.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import socket, ssl
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.load_verify_locations({ca:?})
context.minimum_version = context.maximum_version = ssl.TLSVersion.{version}
context.set_ciphers({cipher:?})
context.set_ecdh_curve({curve:?})
try:
    with socket.create_connection(({host:?}, {port})) as raw:
        with context.wrap_socket(raw, server_hostname={host:?}) as tls:
            agreed = (tls.version(), tls.cipher()[0])
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
            print(*agreed, answer.split(b"\r\n")[0].decode())
except ssl.SSLError as error:
    print("refused", error.reason)
"#,
        ca = ca.display().to_string(),
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The static binary serving TLS with the server certificate and `settings`, more lines of
/// `tls_server_config`; each configuration in a file of its own in `dir`.
fn start_tls(dir: &Path, pki: &Pki, settings: &str) -> Exporter {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let file = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("web-{file}.yml"));
    let config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{settings}",
        pki.server_cert.display(),
        pki.server_key.display(),
    );
    std::fs::write(&path, config).unwrap();
    Exporter::start_static(&[&format!("--web.config.file={}", path.display())])
}

#[test]
fn tls_versions_follow_min_and_max_version_as_in_exporter_toolkit() {
    let dir = TempDir::new("tls-versions");
    let pki = Pki::new(&dir.0);
    // The shipped build: the static binary must carry TLS 1.2, ChaCha20 and P-384 too.
    let start = |versions: &str| start_tls(&dir.0, &pki, versions);

    // exporter-toolkit's defaults, TLS 1.2 to 1.3: a TLS 1.2 client is served, here with
    // ChaCha20-Poly1305 over a P-384 key exchange. (In TLS 1.2 the client's one curve must also
    // be the server certificate's, P-384.)
    let defaults = start("");
    let chacha = "ECDHE-ECDSA-CHACHA20-POLY1305";
    let answer = python_tls_client(&defaults, &pki.ca, "TLSv1_2", chacha, "secp384r1");
    assert_eq!(answer, format!("TLSv1.2 {chacha} HTTP/1.1 200 OK"));
    let answer = python_tls_client(
        &defaults,
        &pki.ca,
        "TLSv1_2",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "secp384r1",
    );
    assert_eq!(
        answer,
        "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 HTTP/1.1 200 OK"
    );
    let answer = python_tls_client(&defaults, &pki.ca, "TLSv1_3", "DEFAULT", "secp384r1");
    assert!(
        answer.starts_with("TLSv1.3 ") && answer.ends_with(" 200 OK"),
        "{answer}"
    );

    // min_version: TLS13 refuses the TLS 1.2 client and still serves TLS 1.3.
    let tls13_only = start("  min_version: TLS13\n");
    let answer = python_tls_client(&tls13_only, &pki.ca, "TLSv1_2", chacha, "secp384r1");
    assert!(answer.starts_with("refused"), "{answer}");
    let answer = python_tls_client(&tls13_only, &pki.ca, "TLSv1_3", "DEFAULT", "X25519");
    assert!(answer.starts_with("TLSv1.3 "), "{answer}");

    // max_version: TLS12 serves TLS 1.2 only.
    let tls12_only = start("  min_version: TLS12\n  max_version: TLS12\n");
    let answer = python_tls_client(&tls12_only, &pki.ca, "TLSv1_3", "DEFAULT", "X25519");
    assert!(answer.starts_with("refused"), "{answer}");
    let answer = python_tls_client(&tls12_only, &pki.ca, "TLSv1_2", chacha, "secp384r1");
    assert_eq!(answer, format!("TLSv1.2 {chacha} HTTP/1.1 200 OK"));

    // cipher_suites by Go's names: TLS 1.2 offers those alone.
    let aes256 = start(
        "  max_version: TLS12
  cipher_suites:
    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
",
    );
    let answer = python_tls_client(&aes256, &pki.ca, "TLSv1_2", chacha, "secp384r1");
    assert!(answer.starts_with("refused"), "{answer}");
    let suite = "ECDHE-ECDSA-AES256-GCM-SHA384";
    let answer = python_tls_client(&aes256, &pki.ca, "TLSv1_2", suite, "secp384r1");
    assert_eq!(answer, format!("TLSv1.2 {suite} HTTP/1.1 200 OK"));

    // curve_preferences by Go's names: the key exchange groups offered.
    let p256 = start(
        "  curve_preferences: [CurveP256]
",
    );
    let answer = python_tls_client(&p256, &pki.ca, "TLSv1_3", "DEFAULT", "X25519");
    assert!(answer.starts_with("refused"), "{answer}");
    let answer = python_tls_client(&p256, &pki.ca, "TLSv1_3", "DEFAULT", "prime256v1");
    assert!(answer.starts_with("TLSv1.3 "), "{answer}");
}

/// The certificate the server presents to a new connection, as DER.
fn served_certificate(exporter: &Exporter, client: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    let mut socket = TcpStream::connect(&exporter.address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::clone(client), name).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).unwrap();
    }
    connection.peer_certificates().unwrap()[0].to_vec()
}

/// A web config file with TLS (no client certificates), `users`, and `extra` lines.
fn write_tls_config(path: &Path, pki: &Pki, users: &[(&str, &str)], extra: &str) {
    let mut text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra}basic_auth_users:\n",
        pki.server_cert.display(),
        pki.server_key.display(),
    );
    for (user, password) in users {
        text.push_str(&format!(
            "  {user}: {}\n",
            bcrypt::hash(password, 4).unwrap()
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// The static binary, as shipped, reads the file again when it or its certificate changes:
/// the next connection gets the rotated certificate, changed users take effect, and a broken
/// edit leaves the last good configuration in force and says so.
#[test]
fn the_web_config_file_and_its_certificate_are_reloaded_without_a_restart() {
    let dir = TempDir::new("reload");
    let pki = Pki::new(&dir.0);
    let path = dir.0.join("web.yml");
    let headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n";
    write_tls_config(&path, &pki, &[("alice", "a1")], headers);
    let mut exporter = Exporter::start_static(&[&format!("--web.config.file={}", path.display())]);
    let client = pki.client(false);
    let get = |path: &str, user: &str, password: &str| {
        https_get(&exporter, &client, path, Some(&basic(user, password))).unwrap()
    };
    // The configured headers on every answer: a page, the probe, a refusal, a 404.
    for (path, status) in [
        ("/metrics", 200),
        ("/healthz", 200),
        ("/metrics/exporter", 200),
        ("/nowhere", 404),
    ] {
        let response = get(path, "alice", "a1");
        assert_eq!(response.status, status, "{path}");
        assert_eq!(response.header("X-Frame-Options"), Some("deny"), "{path}");
        assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
    }
    let refused = get("/metrics", "alice", "wrong");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("X-Frame-Options"), Some("deny"));

    let expiry = |page: &str| {
        sample_value(
            page,
            "k8s_exporter_tls_certificate_expiry_timestamp_seconds{certificate=\"server\"}",
        )
    };
    let own = get("/metrics/exporter", "alice", "a1").text();
    assert_eq!(expiry(&own), Some(DEFAULT_NOT_AFTER), "{own}");
    let first = served_certificate(&exporter, &client);
    pki.rotate_server_certificate();
    eventually(Duration::from_secs(5), "the rotated certificate", || {
        (served_certificate(&exporter, &client) != first).then_some(())
    });
    let rotated = served_certificate(&exporter, &client);
    let own = get("/metrics/exporter", "alice", "a1").text();
    assert_eq!(
        expiry(&own),
        Some(ROTATED_NOT_AFTER_SECONDS),
        "the rotated certificate's notAfter"
    );

    write_tls_config(&path, &pki, &[("bob", "b2")], "");
    eventually(Duration::from_secs(5), "the new users", || {
        (get("/metrics", "bob", "b2").status == 200).then_some(())
    });
    let response = get("/metrics", "alice", "a1");
    assert_eq!(response.status, 401, "alice is no longer a user");
    assert_eq!(
        response.header("X-Frame-Options"),
        None,
        "nor are the headers"
    );

    let reloads = |exporter_page: &str, result: &str| {
        sample_value(
            exporter_page,
            &format!("k8s_exporter_web_config_reloads_total{{result=\"{result}\"}}"),
        )
    };
    let own = get("/metrics/exporter", "bob", "b2").text();
    assert_eq!(reloads(&own, "failure"), Some(0.0));
    assert!(reloads(&own, "success") >= Some(2.0), "{own}");
    std::fs::write(&path, "tls_server_config: [half written\n").unwrap();
    let own = eventually(Duration::from_secs(5), "the failed reload", || {
        let own = get("/metrics/exporter", "bob", "b2").text();
        (reloads(&own, "failure") == Some(1.0)).then_some(own)
    });
    assert_eq!(
        sample_value(&own, "k8s_exporter_web_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        get("/metrics", "bob", "b2").status,
        200,
        "the last good users"
    );
    assert_eq!(served_certificate(&exporter, &client), rotated);
    // Fixed, it takes again.
    write_tls_config(&path, &pki, &[("bob", "b2")], headers);
    eventually(Duration::from_secs(5), "the fixed file", || {
        let own = get("/metrics/exporter", "bob", "b2");
        let text = own.text();
        let fixed = sample_value(&text, "k8s_exporter_web_config_last_reload_successful");
        (fixed == Some(1.0) && own.header("X-Frame-Options") == Some("deny")).then_some(())
    });
    let line = exporter.wait_for_log("web config not reloaded", Duration::from_secs(5));
    assert!(line.contains("web.yml"), "{line}");
}

#[test]
fn the_rate_limit_answers_429_then_refills_and_spares_healthz() {
    let dir = TempDir::new("rate-limit");
    let path = dir.0.join("web.yml");
    std::fs::write(&path, "rate_limit:\n  burst: 3\n  interval: 1s\n").unwrap();
    let exporter = Exporter::start_static(&[&format!("--web.config.file={}", path.display())]);
    for _ in 0..3 {
        assert_eq!(exporter.get("/metrics").status, 200);
    }
    let refused = exporter.get("/metrics");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert_eq!(refused.text().lines().count(), 1, "{}", refused.text());
    assert_eq!(
        exporter.get("/healthz").status,
        200,
        "probes are not limited"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(exporter.get("/metrics").status, 200, "a token a second");
    std::thread::sleep(Duration::from_millis(3100));
    let own = exporter.get("/metrics/exporter").text();
    assert_eq!(
        sample_value(
            &own,
            "k8s_exporter_http_errors_total{reason=\"rate_limited\"}"
        ),
        Some(1.0)
    );
}

/// Client certificates as exporter-toolkit treats them: `client_allowed_sans` refuses a
/// certificate of our own CA that holds none of them; `RequireAnyClientCert` takes a
/// certificate nobody issued but requires one; `RequestClientCert` takes none.
#[test]
fn client_certificates_follow_client_auth_type_and_client_allowed_sans() {
    let dir = TempDir::new("client-certs");
    let pki = Pki::new(&dir.0);
    let start = |tls: &str| start_tls(&dir.0, &pki, tls);
    let status = |exporter: &Exporter, client: &Arc<rustls::ClientConfig>| {
        https_get(exporter, client, "/metrics", None)
            .map(|r| r.status)
            .ok()
    };
    let allowed = pki.client_identity(&dir.0, "prometheus-1.example", true);
    let other = pki.client_identity(&dir.0, "intruder.example", true);
    let stranger = pki.client_identity(&dir.0, "prometheus-1.example-self", false);
    let as_allowed = pki.client_presenting(Some((&allowed.0, &allowed.1)));
    let as_other = pki.client_presenting(Some((&other.0, &other.1)));
    let as_stranger = pki.client_presenting(Some((&stranger.0, &stranger.1)));
    let anonymous = pki.client_presenting(None);

    let sans = start(&format!(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  \
         client_allowed_sans: [prometheus-1.example, 10.0.0.1]\n",
        pki.ca.display()
    ));
    assert_eq!(status(&sans, &as_allowed), Some(200));
    assert_eq!(status(&sans, &as_other), None, "same CA, SAN not allowed");
    assert_eq!(status(&sans, &as_stranger), None, "not our CA");
    assert_eq!(status(&sans, &anonymous), None);

    let any = start("  client_auth_type: RequireAnyClientCert\n");
    assert_eq!(status(&any, &as_stranger), Some(200), "not verified");
    assert_eq!(status(&any, &anonymous), None, "but required");

    let request = start("  client_auth_type: RequestClientCert\n");
    assert_eq!(status(&request, &anonymous), Some(200));
    assert_eq!(status(&request, &as_stranger), Some(200));
}
