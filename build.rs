//! Compiles `proto/remote.proto` (remote write 1.0) and `proto/write_v2.proto` (2.0) with the pure-Rust `protox`, so no system `protoc` is needed,
//! and records the build facts shown by `k8s_exporter_build_info`.
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/remote.proto");
    println!("cargo:rerun-if-changed=proto/write_v2.proto");
    let descriptors = protox::compile(["proto/remote.proto", "proto/write_v2.proto"], ["proto"])?;
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=K8S_EXPORTER_REVISION");
    let revision = std::env::var("K8S_EXPORTER_REVISION")
        .ok()
        .or_else(|| command_output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=K8S_EXPORTER_REVISION={revision}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rust_version = command_output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=K8S_EXPORTER_RUST_VERSION={rust_version}");
    Ok(())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}
