//! Real peers on loopback: Debian's node_exporter as a scrape source, and Prometheus servers,
//! each stopped (by its PID) when dropped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{eventually, find_tool, request, try_request};

/// A port that was free a moment ago; the peers here cannot be told to pick one themselves.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(purpose: &str) -> TempDir {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "k8s_exporter-{purpose}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A peer process, killed when dropped.
pub struct Peer {
    child: Child,
    pub address: String,
    log: PathBuf,
}

impl Peer {
    fn spawn(program: &str, args: &[String], address: String, log: PathBuf) -> Peer {
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(find_tool(program))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Peer {
            child,
            address,
            log,
        }
    }

    /// The peer's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_serving(&mut self, path: &str) {
        let address = self.address.clone();
        eventually(
            Duration::from_secs(20),
            &format!("{address}{path} to answer"),
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("peer exited with {status}:\n{}", self.log());
                }
                let answer = try_request(&address, "GET", path, &[], &[]);
                answer
                    .is_ok_and(|response| response.status == 200)
                    .then_some(())
            },
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// node_exporter serving only the `.prom` files in `textfile_dir` (and its few own series).
pub fn node_exporter(textfile_dir: &Path, log_dir: &Path) -> Peer {
    let address = format!("127.0.0.1:{}", free_port());
    let args = vec![
        "--collector.disable-defaults".to_owned(),
        "--collector.textfile".to_owned(),
        format!("--collector.textfile.directory={}", textfile_dir.display()),
        "--web.disable-exporter-metrics".to_owned(),
        format!("--web.listen-address={address}"),
    ];
    let mut peer = Peer::spawn(
        "prometheus-node-exporter",
        &args,
        address,
        log_dir.join("node_exporter.log"),
    );
    peer.wait_until_serving("/metrics");
    peer
}

/// A Prometheus server with `config` (written as JSON, which is YAML) and its own storage.
pub fn prometheus(name: &str, config: &Value, dir: &Path) -> Peer {
    prometheus_with(name, config, dir, &[])
}

/// `prometheus` with extra flags, such as `--enable-feature=...`.
pub fn prometheus_with(name: &str, config: &Value, dir: &Path, extra: &[&str]) -> Peer {
    let address = format!("127.0.0.1:{}", free_port());
    prometheus_on(&address, name, config, dir, extra)
}

/// `prometheus_with` listening on `address`, which its configuration may name (to scrape
/// itself).
pub fn prometheus_on(
    address: &str,
    name: &str,
    config: &Value,
    dir: &Path,
    extra: &[&str],
) -> Peer {
    let config_path = dir.join(format!("{name}.yml"));
    std::fs::write(&config_path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let address = address.to_owned();
    let args = vec![
        format!("--config.file={}", config_path.display()),
        format!(
            "--storage.tsdb.path={}",
            dir.join(format!("{name}-data")).display()
        ),
        format!("--web.listen-address={address}"),
        "--log.level=warn".to_owned(),
    ];
    let args: Vec<String> = args
        .into_iter()
        .chain(extra.iter().map(|flag| flag.to_string()))
        .collect();
    let mut peer = Peer::spawn(
        "prometheus",
        &args,
        address,
        dir.join(format!("{name}.log")),
    );
    peer.wait_until_serving("/-/ready");
    peer
}

/// One series of an instant query: all labels (with `__name__`) and the value as text.
pub type QueryResult = BTreeMap<BTreeMap<String, String>, String>;

/// Runs an instant query; fails the test on an API error.
pub fn query(prometheus: &Peer, promql: &str) -> QueryResult {
    let body = api(
        prometheus,
        &format!("/api/v1/query?query={}", percent_encode(promql)),
    );
    body["data"]["result"]
        .as_array()
        .expect("a vector result")
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (labels, series["value"][1].as_str().unwrap().to_owned())
        })
        .collect()
}

/// `/api/v1/query_exemplars` over the last hour: each exemplar's labels, value and timestamp
/// (in seconds, as the API gives it).
pub fn query_exemplars(
    prometheus: &Peer,
    promql: &str,
) -> Vec<(BTreeMap<String, String>, f64, f64)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = api(
        prometheus,
        &format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            percent_encode(promql),
            now - 3600,
            now + 60
        ),
    );
    let mut found = Vec::new();
    for series in body["data"].as_array().expect("a list of series") {
        for exemplar in series["exemplars"].as_array().expect("exemplars") {
            let labels = exemplar["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let value = exemplar["value"].as_str().unwrap().parse().unwrap();
            found.push((labels, value, exemplar["timestamp"].as_f64().unwrap()));
        }
    }
    found
}

/// `/api/v1/metadata`: family name to (type, help) as the server learned them from scrapes.
pub fn metadata(prometheus: &Peer) -> BTreeMap<String, (String, String)> {
    let body = api(prometheus, "/api/v1/metadata");
    body["data"]
        .as_object()
        .expect("a metadata object")
        .iter()
        .map(|(name, entries)| {
            let first = &entries[0];
            let field = |key: &str| first[key].as_str().unwrap_or_default().to_owned();
            (name.clone(), (field("type"), field("help")))
        })
        .collect()
}

/// A GET of Prometheus's HTTP API at `path`, as JSON; fails the test unless it says success.
pub fn api(prometheus: &Peer, path: &str) -> Value {
    let response = request(&prometheus.address, "GET", path, &[], &[]);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    let body: Value = serde_json::from_slice(&response.body).expect("JSON from the API");
    assert_eq!(body["status"], "success", "{path}: {body}");
    body
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads an example configuration shipped in `examples/`, as JSON.
pub fn example_config(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
