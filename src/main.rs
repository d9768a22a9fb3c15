//! Parses the flags and hands over to the server.
#![forbid(unsafe_code)]

use k8s_exporter::ops::flags::{Exit, Flags};
use k8s_exporter::ops::{log, telemetry};
use k8s_exporter::server;
use k8s_exporter::web::reload::LiveWebConfig;
use k8s_exporter::web::webconfig::WebConfig;

/// musl's own allocator takes one lock for every call; the glibc build keeps glibc's, which
/// already caches per thread (see `k8s_exporter::base::allocator`).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: k8s_exporter::base::allocator::ThreadCache =
    k8s_exporter::base::allocator::ThreadCache;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match Flags::parse("k8s_exporter", &args, |name| std::env::var(name).ok()) {
        Ok(flags) => flags,
        Err(Exit::Help(text)) => {
            print!("{text}");
            return;
        }
        Err(Exit::Usage(line)) => {
            eprintln!("k8s_exporter: {line}");
            std::process::exit(2);
        }
    };
    if flags.version {
        println!(
            "k8s_exporter {} (revision {}, rust {}, platform {}/{})",
            telemetry::VERSION,
            telemetry::REVISION,
            telemetry::RUST_VERSION,
            telemetry::OS,
            telemetry::ARCH
        );
        return;
    }
    log::init(flags.log_level, flags.log_format);
    let web = match &flags.web_config_file {
        None => LiveWebConfig::fixed(WebConfig::none()),
        Some(path) => LiveWebConfig::load(std::path::Path::new(path)).unwrap_or_else(|line| {
            eprintln!("k8s_exporter: --web.config.file: {line}");
            std::process::exit(2);
        }),
    };
    std::process::exit(server::run(&flags, web));
}
