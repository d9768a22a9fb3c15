//! Replays the fuzz targets' committed seed corpus and every input a fuzzing run found
//! (`tests/fuzz/regressions/<target>/`) through the same checks, on the stable toolchain, so
//! that `make test` guards every past find without `cargo fuzz`.

use std::fs;
use std::path::Path;

#[path = "fuzz/src/targets.rs"]
mod targets;
#[path = "fuzz/src/text_format.rs"]
mod text_format;

/// Runs `target` on every file under `tests/fuzz/{corpus,regressions}/<name>/`; returns how many.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz")
            .join(kind)
            .join(name);
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("list the corpus").path();
            let input = fs::read(&path).expect("read a corpus file");
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{} fails its checks", path.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn write_request_corpus_and_finds_pass() {
    assert!(replay("write_request", targets::write_request) >= 4);
}

#[test]
fn otlp_request_corpus_and_finds_pass() {
    assert!(replay("otlp_request", targets::otlp_request) >= 4);
}

#[test]
fn exposition_corpus_and_finds_pass() {
    assert!(replay("exposition", targets::exposition) >= 4);
}
