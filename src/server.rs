//! The process: listen, serve connections with a fixed pool of workers, expire series, stop
//! gracefully.
//!
//! Shutdown on SIGTERM or SIGINT: stop taking new requests, let those in flight finish (at most
//! [`SHUTDOWN_GRACE`]), exit 0. A handler is installed for both signals, which is also what
//! makes them work for PID 1 in a container (the kernel ignores default-action signals sent to
//! PID 1).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::base::locks::lock;
use crate::base::units::{format_duration, format_size};
use crate::ops::cgroup::MemoryCgroup;
use crate::ops::flags::{Flags, MemoryLimit};
use crate::ops::log;
use crate::ops::memory::{scrape_ahead, Guard, Resident};
use crate::ops::sizing::{Given, Sizing};
use crate::ops::telemetry::{REVISION, VERSION};
use crate::otlp::translate::Translation;
use crate::store::Store;
use crate::web::connections::{Connections, Limits};
use crate::web::reload::{LiveWebConfig, Reloaded, RELOAD_CHECK_INTERVAL};
use crate::web::routes::{App, Settings};
use crate::web::socket::{self, SocketFile};
use crate::web::workers::Workers;
use crate::write::ingest::WriteRules;
use crate::write::names::NameRules;

/// How long in-flight requests may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often the memory guard reads resident memory: a burst between two reads is bounded by
/// the series it let in at the last (see [`crate::ops::memory`]). About 10 µs a read.
const MEMORY_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// How often `--memory.limit=auto` reads the cgroup's limit again, so that an in-place pod
/// resize takes effect without a restart (Prometheus's `--auto-gomemlimit.refresh-interval`
/// is 15s as well).
const MEMORY_LIMIT_REFRESH: Duration = Duration::from_secs(15);

/// Runs the server until a stop signal; returns the process exit code.
pub fn run(flags: &Flags, web: LiveWebConfig) -> i32 {
    log_panics();
    let server = match Server::start(flags, web) {
        Ok(server) => server,
        Err((what, message)) => {
            log::error(
                what,
                &[
                    ("address", &flags.listen_addresses().join(",")),
                    ("err", &message),
                ],
            );
            return 1;
        }
    };
    let (stop_sender, stop) = mpsc::channel();
    if let Err(e) = forward_signals(stop_sender) {
        log::error("cannot install signal handlers", &[("err", &e)]);
        return 1;
    }
    log::info(
        "k8s_exporter started",
        &[
            ("version", &VERSION),
            ("revision", &REVISION),
            ("address", &server.address),
            ("scheme", &server.scheme),
            ("basic_auth", &server.basic_auth),
            ("threads", &server.sizing.threads),
            ("max_connections", &flags.web_max_connections),
            ("max_bytes_in_flight", &server.sizing.max_bytes_in_flight),
            ("series_max", &server.sizing.series_max),
            ("series_ttl", &format_duration(flags.series_ttl)),
            ("write_max_bytes", &flags.write_max_bytes),
            ("write_max_decoded_bytes", &server.sizing.max_decoded_bytes),
            (
                "memory_limit",
                &server.memory_limit.map_or("none".into(), format_size),
            ),
        ],
    );
    if let Some(warning) = server.sizing.overcommit(server.memory_limit) {
        log::warn("memory limit", &[("warning", &warning)]);
    }
    let signal = stop.recv().unwrap_or_default();
    let finished = server.stop();
    log::info(
        "k8s_exporter stopped",
        &[
            ("reason", &format!("signal {signal}")),
            ("requests_in_flight_finished", &finished),
        ],
    );
    0
}

/// A running server: listening, with its workers and housekeeping started. `run` is this
/// plus signals; tests start one in their own process to look into its store.
pub struct Server {
    pub app: Arc<App>,
    /// The addresses it listens on, as bound (the port chosen, if `:0` was asked), joined by
    /// commas.
    pub address: String,
    /// The Unix sockets it listens on, removed when it stops.
    socket_files: Vec<SocketFile>,
    scheme: &'static str,
    basic_auth: bool,
    connections: Arc<Connections>,
    stopping: Arc<AtomicBool>,
    /// The sizes in force at start, given or derived from the memory limit.
    pub sizing: Sizing,
    pub memory_limit: Option<u64>,
}

impl Server {
    /// Starts serving; on failure, what failed and why.
    pub fn start(flags: &Flags, web: LiveWebConfig) -> Result<Server, (&'static str, String)> {
        let mut listeners = Vec::new();
        let mut socket_files = Vec::new();
        let mut addresses = Vec::new();
        for asked in flags.listen_addresses() {
            let (listener, file) =
                socket::bind(&asked, flags.web_unix_socket_mode).map_err(|e| {
                    // The sockets made before this one go with the failed start.
                    socket_files.iter().for_each(SocketFile::remove);
                    ("cannot listen", e)
                })?;
            addresses.push(socket::describe(&listener, &asked));
            listeners.push(listener);
            socket_files.extend(file);
        }
        let address = addresses.join(",");
        let cgroup = MemoryCgroup::find(Path::new("/"));
        let memory_limit = memory_limit(flags.memory_limit, cgroup.as_ref());
        let sizing = Sizing::derive(memory_limit, cpus(), flags.given_sizes());
        let store = Arc::new(Store::new(sizing.series_max));
        let app = Arc::new(App::new(Arc::clone(&store), settings(flags, &sizing)));
        let workers = Workers::start(sizing.threads, Arc::clone(&app));
        let (scheme, basic_auth) = {
            let web = web.current();
            let scheme = if web.tls.is_some() { "https" } else { "http" };
            (scheme, web.basic_auth.is_some())
        };
        app.telemetry
            .set_certificate_expiries(&web.current().certificate_expiries);
        let web = Arc::new(web);
        let connections = Connections::new(
            Arc::clone(&app),
            workers,
            limits(flags, &sizing),
            Arc::clone(&web),
        );
        for listener in listeners {
            connections
                .spawn_acceptor(listener)
                .map_err(|e| ("cannot start accepting connections", e.to_string()))?;
        }
        let stopping = Arc::new(AtomicBool::new(false));
        spawn_housekeeping(Arc::clone(&app), flags.series_ttl, Arc::clone(&stopping));
        if web.has_file() {
            spawn_web_config_watcher(web, Arc::clone(&app), Arc::clone(&stopping));
        }
        let limit = LimitSource {
            flag: flags.memory_limit,
            cgroup,
            given: flags.given_sizes(),
        };
        app.telemetry.set_memory_limit(memory_limit);
        spawn_memory_guard(
            limit,
            memory_limit,
            Arc::clone(&app),
            Arc::clone(&connections),
            Arc::clone(&stopping),
        );
        Ok(Server {
            app,
            address,
            socket_files,
            scheme,
            basic_auth,
            connections,
            stopping,
            sizing,
            memory_limit,
        })
    }

    /// Stops accepting, and waits up to [`SHUTDOWN_GRACE`] for requests in flight; returns
    /// whether they all finished.
    pub fn stop(self) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        self.connections.stop();
        for file in &self.socket_files {
            file.remove();
        }
        self.connections
            .wait_for_requests_in_flight(Instant::now() + SHUTDOWN_GRACE)
    }
}

/// Logs panics as one structured line in the configured format instead of Rust's default text.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = thread::current();
        let name = thread.name().unwrap_or("unnamed");
        log::error("panic", &[("thread", &name), ("err", info)]);
    }));
}

/// Expires series past the TTL and frees label strings nobody uses, on its own timer.
fn spawn_housekeeping(app: Arc<App>, ttl: Duration, stopping: Arc<AtomicBool>) {
    // A tenth of the TTL keeps a series' real lifetime within 10% of it.
    let interval = if ttl.is_zero() {
        Duration::from_secs(10)
    } else {
        (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(10))
    };
    // The store's clock counts whole seconds; rounding the TTL up means a series is never
    // dropped early, and at most a second plus one interval late.
    let ttl_secs = ttl.as_secs_f64().ceil().min(f64::from(u32::MAX)) as u32;
    thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                thread::sleep(interval);
                if !ttl.is_zero() {
                    let removed = app.store.expire(app.store.tick(), ttl_secs);
                    app.telemetry.record_expired(removed);
                }
                app.store.purge_unused_strings();
            }
        })
        .expect("spawning the housekeeping thread at startup");
}

/// The processors this process may use (the cgroup's CPU quota counts), for the worker pool.
fn cpus() -> usize {
    thread::available_parallelism().map_or(2, usize::from)
}

/// The memory limit `--memory.limit` names: the cgroup's for `auto`.
fn memory_limit(flag: MemoryLimit, cgroup: Option<&MemoryCgroup>) -> Option<u64> {
    match flag {
        MemoryLimit::Auto => cgroup.and_then(MemoryCgroup::limit),
        MemoryLimit::Bytes(bytes) => Some(bytes),
        MemoryLimit::Off => None,
    }
}

/// Where the memory guard learns the limit again while running.
struct LimitSource {
    flag: MemoryLimit,
    cgroup: Option<MemoryCgroup>,
    given: Given,
}

/// Runs the memory guard ([`crate::ops::memory`]) on a thread of its own: reads resident memory
/// every [`MEMORY_CHECK_INTERVAL`] and tells the store how many series it may hold, logging each
/// episode of refusals once at its start and once at its end. With `auto`, reads the cgroup's
/// limit again every [`MEMORY_LIMIT_REFRESH`]: a new limit derives new defaults for the series
/// limit and the bytes in flight (the decoded-request cap, kept bodies and threads stay as at
/// start).
fn spawn_memory_guard(
    source: LimitSource,
    mut limit: Option<u64>,
    app: Arc<App>,
    connections: Arc<Connections>,
    stopping: Arc<AtomicBool>,
) {
    if source.flag == MemoryLimit::Off {
        return;
    }
    let Some(mut resident) = Resident::open(Path::new("/proc")) else {
        if limit.is_some() {
            log::warn(
                "memory limit: /proc/self/statm cannot be read, so only the sizes derived from \
                 the limit bound memory; new series are not refused near it",
                &[],
            );
        }
        return;
    };
    thread::Builder::new()
        .name("memory-guard".into())
        .spawn(move || {
            let mut guard = Guard::default();
            let mut refreshed = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                thread::sleep(MEMORY_CHECK_INTERVAL);
                if source.flag == MemoryLimit::Auto && refreshed.elapsed() >= MEMORY_LIMIT_REFRESH {
                    refreshed = Instant::now();
                    let now = source.cgroup.as_ref().and_then(MemoryCgroup::limit);
                    if now != limit {
                        limit = now;
                        limit_changed(source.given, limit, &app, &connections);
                    }
                }
                // Without a limit (yet), statm is not read.
                let Some((bytes, rss)) = limit.and_then(|bytes| Some((bytes, resident.bytes()?)))
                else {
                    app.store.set_memory_cap(usize::MAX);
                    continue;
                };
                let series = app.store.series_count();
                let held = (series, app.store.tuple_count());
                let ahead = scrape_ahead(held, *lock(&app.scraped));
                let decision = guard.check(bytes, rss, ahead, series);
                app.store.set_memory_cap(decision.cap);
                match decision.changed {
                    Some(true) => log::warn(
                        "memory limit: resident memory passed 90% of the limit; new series are \
                         refused until it is under 80% (series already held are still written)",
                        &[
                            ("resident", &format_size(rss)),
                            ("limit", &format_size(bytes)),
                            ("series", &series),
                        ],
                    ),
                    Some(false) => log::info(
                        "memory limit: new series are taken again",
                        &[
                            ("in_use", &format_size(decision.in_use)),
                            ("limit", &format_size(bytes)),
                            ("series", &series),
                        ],
                    ),
                    None => {}
                }
            }
        })
        .expect("spawning the memory guard at startup");
}

/// A memory limit that changed while running: logged, shown, and the sizes derived from it
/// derived again.
fn limit_changed(given: Given, limit: Option<u64>, app: &App, connections: &Connections) {
    log::info(
        "memory limit changed",
        &[("limit", &limit.map_or("none".into(), format_size))],
    );
    app.telemetry.set_memory_limit(limit);
    let sizing = Sizing::derive(limit, cpus(), given);
    app.store.set_max_series(sizing.series_max);
    connections.set_max_bytes_in_flight(sizing.max_bytes_in_flight);
}

/// Reloads `--web.config.file` when it or a file it names changes (see
/// [`crate::web::reload`]), logging and counting each reload.
fn spawn_web_config_watcher(web: Arc<LiveWebConfig>, app: Arc<App>, stopping: Arc<AtomicBool>) {
    thread::Builder::new()
        .name("web-config".into())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                thread::sleep(RELOAD_CHECK_INTERVAL);
                match web.reload_if_changed() {
                    None => continue,
                    Some(Reloaded::Took) => {
                        log::info("web config reloaded", &[]);
                        app.telemetry.record_web_config_reload(true);
                        app.telemetry
                            .set_certificate_expiries(&web.current().certificate_expiries);
                    }
                    Some(Reloaded::Failed(error)) => {
                        log::warn(
                            "web config not reloaded; the one before stays in force",
                            &[("err", &error)],
                        );
                        app.telemetry.record_web_config_reload(false);
                    }
                }
            }
        })
        .expect("spawning the web config watcher at startup");
}

fn forward_signals(stop: mpsc::Sender<i32>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = stop.send(signal);
            }
        })?;
    Ok(())
}

fn limits(flags: &Flags, sizing: &Sizing) -> Limits {
    Limits {
        max_connections: flags.web_max_connections,
        max_bytes_in_flight: sizing.max_bytes_in_flight,
        spare_bodies_bytes: sizing.spare_bodies_bytes,
        read_timeout: flags.web_read_timeout,
        idle_timeout: flags.web_idle_timeout,
        write_timeout: flags.web_write_timeout,
    }
}

fn settings(flags: &Flags, sizing: &Sizing) -> Settings {
    let flags_in_effect = vec![
        ("web.listen-address", flags.listen_addresses().join(",")),
        (
            "web.unix-socket-mode",
            format!("{:04o}", flags.web_unix_socket_mode),
        ),
        ("web.telemetry-path", flags.web_telemetry_path.clone()),
        (
            "web.exporter-telemetry-path",
            flags.web_exporter_telemetry_path.clone(),
        ),
        ("web.threads", sizing.threads.to_string()),
        (
            "web.expose-timestamps",
            flags.web_expose_timestamps.to_string(),
        ),
        ("web.max-connections", flags.web_max_connections.to_string()),
        (
            "web.max-bytes-in-flight",
            format_size(sizing.max_bytes_in_flight as u64),
        ),
        ("web.read-timeout", format_duration(flags.web_read_timeout)),
        (
            "web.write-timeout",
            format_duration(flags.web_write_timeout),
        ),
        ("web.idle-timeout", format_duration(flags.web_idle_timeout)),
        ("series.ttl", format_duration(flags.series_ttl)),
        ("series.max", sizing.series_max.to_string()),
        ("write.max-bytes", format_size(flags.write_max_bytes as u64)),
        (
            "write.max-decoded-bytes",
            format_size(sizing.max_decoded_bytes as u64),
        ),
        (
            "memory.limit",
            match flags.memory_limit {
                MemoryLimit::Auto => "auto".to_owned(),
                MemoryLimit::Bytes(bytes) => format_size(bytes),
                MemoryLimit::Off => "0".to_owned(),
            },
        ),
        (
            "write.name-validation",
            match flags.write_name_validation {
                NameRules::Utf8 => "utf8",
                NameRules::Legacy => "legacy",
            }
            .to_owned(),
        ),
        (
            "write.native-histogram-max-buckets",
            flags.write_native_histogram_max_buckets.to_string(),
        ),
        (
            "otlp.translation-strategy",
            flags.otlp_translation_strategy.name().to_owned(),
        ),
        (
            "otlp.promote-resource-attributes",
            flags.otlp_promote_resource_attributes.0.join(","),
        ),
        ("log.level", format!("{:?}", flags.log_level).to_lowercase()),
        (
            "log.format",
            format!("{:?}", flags.log_format).to_lowercase(),
        ),
    ];
    Settings {
        telemetry_path: flags.web_telemetry_path.clone(),
        exporter_telemetry_path: flags.web_exporter_telemetry_path.clone(),
        expose_timestamps: flags.web_expose_timestamps,
        max_bytes: flags.write_max_bytes,
        max_decoded_bytes: sizing.max_decoded_bytes,
        write_rules: WriteRules {
            names: flags.write_name_validation,
            max_histogram_buckets: flags.write_native_histogram_max_buckets,
        },
        otlp_translation: Translation {
            strategy: flags.otlp_translation_strategy,
            promoted: flags.otlp_promote_resource_attributes.0.clone(),
        },
        ttl: flags.series_ttl,
        flags_in_effect: flags_in_effect
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect(),
    }
}
