//! `make dist`: release archives laid out as Prometheus lays out its own. Each unpacks to one
//! directory with the binary, LICENSE and README.md; its binary is of the archive's
//! architecture and runs `--version`; every line of `sha256sums.txt` verifies; and packing the
//! same tree again gives the same bytes. Also `Dockerfile.scratch`, which no Docker engine here
//! can build: each `TARGETARCH` it takes maps to the binary `make static ARCH=...` writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::peers::TempDir;
use crate::support::{elf_machine_and_interpreter, static_binary_for, Arch};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dist() -> PathBuf {
    let dist = repository().join("dist");
    assert!(
        dist.join("sha256sums.txt").is_file(),
        "no {}: run `make dist` first (`make test` does)",
        dist.display()
    );
    dist
}

fn archive_name(arch: Arch) -> String {
    format!("k8s_exporter-{VERSION}.linux-{}", arch.name())
}

/// Each member of a tar.gz as Python's `tarfile` reads it: name, type, mode, owner, group and
/// mtime, one line each.
const LIST_MEMBERS: &str = r#"
import sys, tarfile
with tarfile.open(sys.argv[1], "r:gz") as archive:
    for m in archive.getmembers():
        print(m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.uname, m.gname, m.mtime)
"#;

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The time every archive member carries: the last commit's, as `make archives` takes it.
fn source_date_epoch() -> String {
    run(Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(repository()))
    .trim()
    .to_owned()
}

#[test]
fn every_checksum_verifies_and_names_both_archives() {
    let dist = dist();
    let verified = run(Command::new("sha256sum")
        .args(["--check", "--strict", "sha256sums.txt"])
        .current_dir(&dist));
    let mut names: Vec<&str> = verified
        .lines()
        .map(|line| line.strip_suffix(": OK").expect(line))
        .collect();
    names.sort_unstable();
    let expected: Vec<String> = [Arch::Amd64, Arch::Arm64]
        .iter()
        .map(|&arch| format!("{}.tar.gz", archive_name(arch)))
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn each_archive_holds_its_architectures_binary_the_license_and_the_readme() {
    let dist = dist();
    let epoch = source_date_epoch();
    for arch in [Arch::Amd64, Arch::Arm64] {
        let name = archive_name(arch);
        let archive = dist.join(format!("{name}.tar.gz"));
        let gzip = std::fs::read(&archive).unwrap();
        assert_eq!(gzip[..3], [0x1f, 0x8b, 8], "{name}: gzip, deflate");
        assert_eq!(gzip[3] & 0x08, 0, "{name}: no file name in the gzip header");
        assert_eq!(
            gzip[4..8],
            [0, 0, 0, 0],
            "{name}: no time in the gzip header"
        );

        let members = run(Command::new("python3")
            .args(["-c", LIST_MEMBERS])
            .arg(&archive));
        let expected = [
            format!("{name} 5 0o755 0 0   {epoch}"),
            format!("{name}/LICENSE 0 0o644 0 0   {epoch}"),
            format!("{name}/README.md 0 0o644 0 0   {epoch}"),
            format!("{name}/k8s_exporter 0 0o755 0 0   {epoch}"),
        ];
        assert_eq!(members.lines().collect::<Vec<_>>(), expected, "{name}");

        let unpacked = TempDir::new(&format!("dist-{}", arch.name()));
        run(Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&unpacked.0));
        let folder = unpacked.0.join(&name);
        let binary = folder.join("k8s_exporter");
        assert_eq!(
            elf_machine_and_interpreter(&binary),
            (arch.elf_machine(), false),
            "{name}: a static binary of its architecture"
        );
        assert!(
            std::fs::read(&binary).unwrap() == std::fs::read(static_binary_for(arch)).unwrap(),
            "{name}: the binary `make static ARCH={}` built",
            arch.name()
        );
        let version = run(arch.command(&binary).arg("--version"));
        assert!(
            version.starts_with(&format!("k8s_exporter {VERSION} (")),
            "{version}"
        );
        assert!(
            version.contains(&format!("platform linux/{})", arch.name())),
            "{version}"
        );
        let license = std::fs::read_to_string(folder.join("LICENSE")).unwrap();
        assert!(license.contains("Apache License\n                           Version 2.0"));
        assert_eq!(
            std::fs::read(folder.join("README.md")).unwrap(),
            std::fs::read(repository().join("README.md")).unwrap()
        );
    }
}

#[test]
fn packing_the_same_tree_again_gives_the_same_bytes() {
    let dist = dist();
    let again = TempDir::new("dist-again");
    run(Command::new("make")
        .args(["-s", "--no-print-directory", "archives"])
        .arg(format!("DIST={}", again.0.display()))
        .current_dir(repository()));
    let mut files: Vec<String> = std::fs::read_dir(&again.0)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort_unstable();
    assert_eq!(files.len(), 3, "two archives and the checksums: {files:?}");
    for file in files {
        assert!(
            std::fs::read(again.0.join(&file)).unwrap() == std::fs::read(dist.join(&file)).unwrap(),
            "{file} differs when packed again"
        );
    }
}

/// The stage of `Dockerfile.scratch` that `TARGETARCH=<arch>` selects, and the file it copies.
fn dockerfile_binary(dockerfile: &str, arch: &str) -> Option<String> {
    let stage = format!("FROM scratch AS binary-{arch}");
    let mut lines = dockerfile.lines().skip_while(|line| line.trim() != stage);
    lines.next()?;
    let copy = lines
        .take_while(|line| !line.starts_with("FROM "))
        .find_map(|line| line.strip_prefix("COPY "))?;
    let (source, destination) = copy.split_once(' ')?;
    (destination == "/k8s_exporter").then(|| source.to_owned())
}

#[test]
fn the_dockerfile_copies_for_each_targetarch_the_binary_make_static_writes() {
    let dockerfile = std::fs::read_to_string(repository().join("Dockerfile.scratch")).unwrap();
    let last_from = dockerfile
        .lines()
        .rfind(|line| line.starts_with("FROM "))
        .unwrap();
    assert_eq!(last_from, "FROM binary-${TARGETARCH}");
    assert!(dockerfile.lines().any(|line| line == "ARG TARGETARCH"));
    for arch in [Arch::Amd64, Arch::Arm64] {
        let source = dockerfile_binary(&dockerfile, arch.name())
            .unwrap_or_else(|| panic!("no stage copies the {} binary", arch.name()));
        let binary = repository().join(&source);
        assert_eq!(binary, static_binary_for(arch), "{}", arch.name());
        assert_eq!(
            elf_machine_and_interpreter(&binary).0,
            arch.elf_machine(),
            "{source}"
        );
    }
    // The build context holds the binaries, and not the rest of target/.
    let ignore = std::fs::read_to_string(repository().join(".dockerignore")).unwrap();
    for arch in [Arch::Amd64, Arch::Arm64] {
        let source = dockerfile_binary(&dockerfile, arch.name()).unwrap();
        assert!(
            ignore.lines().any(|line| line == format!("!{source}")),
            "{source}"
        );
    }
}
