//! The README and `docs/` hold together: every relative link reaches a file of the repository
//! and every `#anchor` a heading of it (as GitHub names headings), every repository path
//! quoted in backticks exists, and `docs/configuration.md` documents exactly the flags
//! `--help` prints, with the defaults it prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::release_binary;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README, BENCHMARKS.md and every Markdown file under `docs/`.
fn documents() -> Vec<PathBuf> {
    let root = repository();
    let mut documents = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 8, "docs/ lost files: {docs:?}");
    documents.extend(docs);
    documents
}

/// The lines of a Markdown file outside fenced code blocks, with their numbers: a `#` inside a
/// fence is a comment or a `# TYPE` line, not a heading.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// The anchor GitHub gives a heading: its text without Markdown's backticks, lower case, with
/// every character that is not a letter, digit, space, `-` or `_` removed and spaces made `-`;
/// a repeated anchor gets `-1`, `-2`, ... in order.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let count = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// The targets of the inline links (`[text](target)`) of the prose lines.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    for (number, line) in prose(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let target: String = rest[start + 2..]
                .chars()
                .take_while(|c| *c != ')' && !c.is_whitespace())
                .collect();
            links.push((number, target));
            rest = &rest[start + 2..];
        }
    }
    links
}

/// Where `target`, written in `document`, leads: None for a link off the repository.
fn resolve(document: &Path, target: &str) -> Option<(PathBuf, Option<String>)> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor.to_string())),
        None => (target, None),
    };
    let file = if path.is_empty() {
        document.to_path_buf()
    } else {
        document.parent().unwrap().join(path)
    };
    Some((file, anchor))
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for (line, target) in links(&text) {
            let Some((file, anchor)) = resolve(&document, &target) else {
                continue;
            };
            checked += 1;
            let place = format!("{}:{line}: {target}", document.display());
            if !file.exists() {
                broken.push(format!("{place}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let headings = anchors(&std::fs::read_to_string(&file).unwrap_or_default());
                if !headings.contains(&anchor) {
                    broken.push(format!("{place}: no heading makes #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 40, "only {checked} relative links found");
}

#[test]
fn every_repository_path_in_backticks_exists() {
    const FOLDERS: [&str; 9] = [
        "src/",
        "tests/",
        "deploy/",
        "charts/",
        "examples/",
        "docs/",
        "benches/",
        "proto/",
        ".ci/",
    ];
    let root = repository();
    let mut missing = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for (line, text) in prose(&text) {
            // Odd pieces between backticks are code spans.
            for span in text.split('`').skip(1).step_by(2) {
                let is_path = FOLDERS.iter().any(|folder| span.starts_with(folder))
                    && !span.contains(|c: char| c.is_whitespace() || "<>{}*".contains(c))
                    && !span.contains("..");
                if !is_path {
                    continue;
                }
                checked += 1;
                if !root.join(span).exists() {
                    missing.push(format!("{}:{line}: {span}", document.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(checked >= 30, "only {checked} repository paths found");
}

/// Each option `--help` prints, with its description on one line.
fn help_options() -> BTreeMap<String, String> {
    let output = Command::new(release_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let options = help.split("Options:").nth(1).expect("an Options: section");
    let mut parsed: BTreeMap<String, String> = BTreeMap::new();
    let mut current = None;
    for line in options.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") && line.starts_with("  --") {
            let (name, description) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
            let name = name.trim_end_matches(',').to_string();
            parsed.insert(name.clone(), description.trim().to_string());
            current = Some(name);
        } else if let Some(name) = &current {
            let description = parsed.get_mut(name).unwrap();
            description.push(' ');
            description.push_str(trimmed);
        }
    }
    parsed
}

/// The rows of docs/configuration.md's flag table: flag and its default column.
fn documented_flags() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repository().join("docs/configuration.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let flag = cells.first()?.strip_prefix("| `--")?.strip_suffix('`')?;
            Some((format!("--{flag}"), cells.get(1)?.to_string()))
        })
        .collect()
}

#[test]
fn every_flag_help_prints_is_documented_with_its_default() {
    let printed = help_options();
    let documented = documented_flags();
    assert!(printed.len() >= 20, "--help printed {printed:?}");
    let printed_names: BTreeSet<&String> = printed.keys().collect();
    let documented_names: BTreeSet<&String> = documented.keys().collect();
    assert_eq!(
        printed_names, documented_names,
        "docs/configuration.md's flags differ from --help's"
    );
    for (flag, description) in &printed {
        // argh prints "(default X)" or "(default X, or derived ...)"; "(default: ...)" is prose.
        let Some(after) = description.split("(default ").nth(1) else {
            continue;
        };
        let default = after.split([',', ')']).next().unwrap().trim_matches('"');
        assert!(
            documented[flag].contains(default),
            "{flag}: --help says the default is {default}, docs/configuration.md says {}",
            documented[flag]
        );
    }
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    assert!(
        readme.len() <= 15 * 1024,
        "README.md is {} bytes",
        readme.len()
    );
    let first_lines: Vec<&str> = readme.lines().take(5).collect();
    for command in ["make run", "make test"] {
        assert!(
            first_lines
                .iter()
                .any(|line| line.trim_start().starts_with(command)),
            "the README's first lines lack `{command}`"
        );
    }
}
