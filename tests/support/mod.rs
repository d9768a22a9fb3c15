//! Drives the real binary over loopback: start it on port 0, talk HTTP, build remote writes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod cadvisor;
pub mod cgroup;
pub mod peers;
pub mod tls;
pub mod upstream;

use k8s_exporter::write::proto::{MetricMetadata, TimeSeries, WriteRequest};
use prost::Message;

pub const BINARY: &str = env!("CARGO_BIN_EXE_k8s_exporter");

/// An architecture `make static ARCH=<name>` builds for, named as Go and Docker name it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// The architecture of this machine, and so of the test binary.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target `make static ARCH=<name>` builds.
    pub fn target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// `e_machine` of an ELF header for this architecture (`EM_X86_64`, `EM_AARCH64`).
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,
            Arch::Arm64 => 183,
        }
    }

    /// The static user-mode emulator (Debian's `qemu-user-static`) that runs this
    /// architecture's binaries here, or `None` on a machine of this architecture.
    pub fn emulator(self) -> Option<PathBuf> {
        (self != Arch::host()).then(|| {
            let qemu = match self {
                Arch::Amd64 => "qemu-x86_64-static",
                Arch::Arm64 => "qemu-aarch64-static",
            };
            PathBuf::from(find_tool(qemu))
        })
    }

    /// A command that runs `binary`, built for this architecture, on this machine.
    pub fn command(self, binary: &Path) -> Command {
        match self.emulator() {
            None => Command::new(binary),
            Some(qemu) => {
                let mut command = Command::new(qemu);
                command.arg(binary);
                command
            }
        }
    }
}

/// The `make static` binary for this machine, which alone runs on the project's own allocator
/// (`k8s_exporter::base::allocator`).
pub fn static_binary() -> PathBuf {
    static_binary_for(Arch::host())
}

/// The glibc release build (`cargo build --release`, which `make test` runs), as `make run`
/// serves: the glibc build as users run it, not the unoptimized test build.
pub fn release_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/k8s_exporter");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release` first (`make test` does)",
        path.display()
    );
    path
}

/// The binary `make static ARCH=<arch>` writes (`make test` builds both).
pub fn static_binary_for(arch: Arch) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(arch.target())
        .join("release/k8s_exporter");
    assert!(
        path.is_file(),
        "{} is missing: run `make static ARCH={}` first (`make test` does)",
        path.display(),
        arch.name()
    );
    path
}

/// The machine an ELF file is built for (`e_machine`), and whether it asks for a program
/// interpreter (a `PT_INTERP` program header), which a fully static binary does not.
pub fn elf_machine_and_interpreter(binary: &Path) -> (u16, bool) {
    let elf = std::fs::read(binary).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{}", binary.display());
    assert_eq!(elf[4], 2, "a 64-bit ELF");
    assert_eq!(elf[5], 1, "little-endian");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (headers, header_size, count) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    let interpreter =
        (0..count as usize).any(|i| u32_at(headers + i * header_size as usize) == PT_INTERP);
    (u16_at(0x12), interpreter)
}

/// The one child process of `pid` (the process `unshare --fork` started).
pub fn only_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<u32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    children[0]
}

/// A running exporter, stopped (by its PID) when dropped.
pub struct Exporter {
    child: Child,
    pub address: String,
    log: mpsc::Receiver<String>,
    log_lines: Vec<String>,
}

impl Exporter {
    /// Starts the debug binary on a free loopback port with extra flags.
    pub fn start(flags: &[&str]) -> Exporter {
        Exporter::start_command(Command::new(BINARY), flags)
    }

    /// Starts the `make static` binary (see [`static_binary`]) on a free loopback port.
    pub fn start_static(flags: &[&str]) -> Exporter {
        Exporter::start_command(Command::new(static_binary()), flags)
    }

    /// Starts `command` (the binary, or a wrapper running it) with a loopback port picked by
    /// the kernel, and waits for its startup line to learn the port.
    pub fn start_command(command: Command, flags: &[&str]) -> Exporter {
        Exporter::start_listening(command, "127.0.0.1:0", flags)
    }

    /// Starts the debug binary on `address` (a loopback one), as a server that comes back
    /// where its peers expect it.
    pub fn start_on(address: &str, flags: &[&str]) -> Exporter {
        Exporter::start_listening(Command::new(BINARY), address, flags)
    }

    fn start_listening(mut command: Command, address: &str, flags: &[&str]) -> Exporter {
        command
            .arg(format!("--web.listen-address={address}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start k8s_exporter");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut exporter = Exporter {
            child,
            address: String::new(),
            log,
            log_lines: Vec::new(),
        };
        let started = exporter.wait_for_log("k8s_exporter started", Duration::from_secs(10));
        // The first of the addresses it listens on: the TCP one this starts it with.
        let addresses = log_field(&started, "address").expect("startup line names the address");
        exporter.address = addresses.split(',').next().unwrap_or_default().to_owned();
        exporter
    }

    /// Waits for a log line containing `needle`, failing the test after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(line) = self.log_lines.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.log_lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?} within {timeout:?}; log so far: {:#?}",
                    self.log_lines
                ),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the exporter by PID and waits for it to exit, at most `timeout`.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        self.signal_pid_and_wait(self.pid(), signal, timeout)
    }

    /// Sends a signal to `pid` (the exporter, or the process a wrapper started) and waits for
    /// the started process to exit, at most `timeout`.
    pub fn signal_pid_and_wait(&mut self, pid: u32, signal: &str, timeout: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status();
        assert!(sent.expect("run kill").success(), "kill -{signal} failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the exporter") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "exporter did not exit within {timeout:?} of {signal}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        request(&self.address, "GET", path, &[], &[])
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        request(&self.address, method, path, headers, body)
    }

    /// POSTs a snappy-compressed `WriteRequest` with the headers Prometheus sends.
    pub fn write(&self, write_request: &WriteRequest) -> HttpResponse {
        write_to(&self.address, write_request)
    }

    /// The `/metrics` page as text.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200);
        response.text()
    }

    /// The value of one sample line (`name{labels}` exactly as exposed) on `page`, if present.
    pub fn exporter_value(&self, series: &str) -> Option<f64> {
        sample_value(&self.get("/metrics/exporter").text(), series)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A field of a log line, in logfmt (`key=value`) or JSON (`"key":"value"`).
fn log_field(line: &str, key: &str) -> Option<String> {
    if line.starts_with('{') {
        let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
        return Some(line[start..].split('"').next()?.to_owned());
    }
    let value = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{key}=")))?;
    Some(value.trim_matches('"').to_owned())
}

/// The value of the sample line whose series part (before the value) is exactly `series`.
pub fn sample_value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| parse_value(value))
        })
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("{text:?} is not a value")),
    }
}

pub const REMOTE_WRITE_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// POSTs `write_request` to the exporter at `address` as Prometheus would.
/// The headers of a remote write 2.0 request.
pub const REMOTE_WRITE_V2_HEADERS: [(&str, &str); 3] = [
    (
        "Content-Type",
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    ),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "2.0.0"),
];

pub fn write_to(address: &str, write_request: &WriteRequest) -> HttpResponse {
    request(
        address,
        "POST",
        "/write",
        &REMOTE_WRITE_HEADERS,
        &snappy(&write_request.encode_to_vec()),
    )
}

pub fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy compress")
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_request(address, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://{address}{path}: {e}"))
}

/// As `request`, but a connection or read failure is returned, for polling a starting server.
pub fn try_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

/// Reads one answer framed by `Content-Length` or chunked (or none, for 1xx and 204) from a
/// connection that stays open, so that keep-alive and pipelining can be observed.
pub fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<HttpResponse> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let before = head.len();
        reader.read_until(b'\n', &mut head)?;
        if head.len() == before {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    let mut response = parse_response(&head);
    if response
        .header("Transfer-Encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim(), 16).expect("hex chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(response);
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    }
    let length = response
        .header("Content-Length")
        .map_or(0, |v| v.parse().expect("numeric Content-Length"));
    response.body = vec![0; length];
    reader.read_exact(&mut response.body)?;
    Ok(response)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII header");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("Transfer-Encoding") && v.contains("chunked"));
    // A head read alone (by `read_response`) has no body yet.
    if chunked && !body.is_empty() {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries::from_pairs(labels, samples)
}

pub fn write_request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

pub fn metadata(kind: i32, family: &str, help: &str) -> MetricMetadata {
    MetricMetadata {
        r#type: kind,
        metric_family_name: family.as_bytes().to_vec().into(),
        help: help.as_bytes().to_vec().into(),
        unit: Default::default(),
    }
}

/// Polls `check` until it returns `Ok`; on timeout fails with the last `Err` it gave.
pub fn until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing the test after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The first of `names` found on the PATH or in Debian's usual places.
pub fn find_tool(name: &str) -> String {
    let mut candidates = vec![format!("/usr/bin/{name}"), format!("/usr/local/bin/{name}")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates
            .extend(std::env::split_paths(&path).map(|dir| dir.join(name).display().to_string()));
    }
    candidates
        .into_iter()
        .find(|candidate| Path::new(candidate).is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed; `make test` installs it (see `make deps`)")
        })
}

/// Runs `program` with `input` on its standard input and collects what it printed.
pub fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Output {
    run_with_stdin_bytes(program, args, input.as_bytes())
}

/// `run_with_stdin` for input that need not be text.
pub fn run_with_stdin_bytes(program: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// `promtool check metrics` on `page`: its exit code and everything it printed.
pub fn promtool_check(page: &str) -> (Option<i32>, String) {
    let output = run_with_stdin(&find_tool("promtool"), &["check", "metrics"], page);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// Python's `prometheus_client` parser over `page` (tests/parse_exposition.py): its output, one
/// line per family and per sample.
pub fn python_parse(page: &str) -> String {
    python_parse_with(page, &[])
}

/// [`python_parse`] with the script's arguments (`--openmetrics`).
pub fn python_parse_with(page: &str, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parse_exposition.py");
    let mut all = vec![script];
    all.extend_from_slice(args);
    let output = run_with_stdin("python3", &all, page);
    assert!(
        output.status.success(),
        "python parser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
