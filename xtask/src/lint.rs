//! Two checks of the workspace's own sources, run as tests: no import
//! circle between the files of a crate, and no type name declared twice.
//! A circle means two files each need the other (neither can be read, or
//! moved, alone); a repeated name means a reader must know which of two
//! things a word is. Both are read from the text of the sources, as a
//! reader meets them: `crate::`/`super::` paths for the imports (test
//! modules left out), `struct`/`enum`/`trait`/`type`/`union` items for
//! the names (associated types, which implement a trait's, left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's member crates (each in the folder of its name), read
/// from the root `Cargo.toml`, so a new crate is checked without a list to
/// keep.
fn crates(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = manifest.split("members = [").nth(1).and_then(|rest| rest.split(']').next()).unwrap_or_default();
    members.split(',').map(|m| m.trim().trim_matches('"').to_owned()).filter(|m| !m.is_empty()).collect()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file's module path in its crate: `src/a/b.rs` and `src/a/b/mod.rs`
/// are `a::b`; `lib.rs` and `main.rs` the root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") || (parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main")) {
        parts.pop();
    }
    parts
}

/// The text before the file's first `#[cfg(test)]`: what the crate is
/// made of, without its tests.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// The paths a file names from its crate: `crate::a::b::C`, `super::x`,
/// and each item of `crate::{a, b::c}`, as module paths from the root.
fn paths_named(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    for (at, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        if at > 0 && text[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        // `super` of module `a::b` is `a`, whether its file is `a/b.rs` or `a/b/mod.rs`.
        let base: Vec<String> =
            if text[at..].starts_with("super::") { module[..module.len().saturating_sub(1)].to_vec() } else { Vec::new() };
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let segs: Vec<String> = item.trim().split("::").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                if !segs.is_empty() {
                    out.push([base.clone(), segs].concat());
                }
            }
        } else {
            let end = rest.find(|c: char| !(word(c) || c == ':')).unwrap_or(rest.len());
            let segs: Vec<String> = rest[..end].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            out.push([base, segs].concat());
        }
    }
    out
}

/// Each crate's circles of files that import each other, as module paths.
pub fn import_circles(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for krate in crates(root) {
        let src = root.join(&krate).join("src");
        let files = rust_files(&src);
        let modules: BTreeMap<Vec<String>, PathBuf> = files.iter().map(|f| (module_of(&src, f), f.clone())).collect();
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (module, file) in &modules {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let targets = edges.entry(module.clone()).or_default();
            for path in paths_named(module, without_tests(&text)) {
                // The longest prefix of the path that is a file's module.
                let Some(target) = (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains_key(p)) else { continue };
                // A module and its ancestors or descendants: containment, not an import between peers.
                if module.starts_with(&target) || target.starts_with(module) {
                    continue;
                }
                targets.insert(target);
            }
        }
        for circle in strongly_connected(&edges) {
            found.push((krate.clone(), circle.iter().map(|m| m.join("::")).collect()));
        }
    }
    found
}

/// Tarjan's strongly connected components with more than one member.
fn strongly_connected(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(s: &mut Tarjan<'a>, v: &'a Vec<String>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.edges.get(v) {
            for w in next {
                let Some((w, _)) = s.edges.get_key_value(w) else { continue };
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state =
        Tarjan { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), out: Vec::new() };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

/// Type names declared more than once across the workspace's sources
/// (tests included), each with where; a binary's `Cli` aside.
pub fn repeated_type_names(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for krate in crates(root) {
        let dir = root.join(&krate);
        for sub in ["src", "tests", "benches"] {
            for file in rust_files(&dir.join(sub)) {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                for (n, line) in text.lines().enumerate() {
                    if let Some(name) = declared_type(line) {
                        let at = format!("{}:{}", file.strip_prefix(root).unwrap_or(&file).display(), n + 1);
                        seen.entry(name.to_owned()).or_default().push(at);
                    }
                }
            }
        }
    }
    seen.retain(|name, at| at.len() > 1 && name != "Cli");
    seen
}

/// The name a line declares as a type: `pub struct Name`, `enum Name<T>`,
/// `pub(crate) trait Name`, `type Name = …` at item level (an indented
/// `type X = …;` with no visibility is an associated type: left out).
fn declared_type(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let indented = trimmed.len() != line.len();
    let mut rest = trimmed;
    let mut public = false;
    if let Some(r) = rest.strip_prefix("pub") {
        public = true;
        rest = r.strip_prefix(|c: char| c == '(').map_or(r, |r| r.split_once(')').map_or(r, |(_, after)| after));
        rest = rest.trim_start();
    }
    for keyword in ["struct ", "enum ", "trait ", "union ", "type "] {
        if let Some(r) = rest.strip_prefix(keyword) {
            if keyword == "type " && indented && !public {
                return None;
            }
            let end = r.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(r.len());
            let name = &r[..end];
            return name.chars().next().is_some_and(char::is_uppercase).then_some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::workspace_root()
    }

    /// No file of a crate imports a file that imports it back, however
    /// long the way round.
    #[test]
    fn no_import_circle() {
        // The checks read every member: a manifest they misread would check nothing.
        let members = crates(&root());
        assert!(
            ["server", "mock", "schema", "pages", "flowbench", "benches", "xtask"].iter().all(|c| members.iter().any(|m| m == c)),
            "{members:?}"
        );
        let circles = import_circles(&root());
        assert!(circles.is_empty(), "files that import each other: {circles:#?}");
    }

    /// Each type name says one thing in the whole workspace.
    #[test]
    fn each_type_name_is_declared_once() {
        let repeated = repeated_type_names(&root());
        assert!(repeated.is_empty(), "type names declared more than once: {repeated:#?}");
    }

    /// The server's layers: the engine and what it runs (`workflow/`) name
    /// no HTTP type, nor the HTTP layer or the state that serves it.
    #[test]
    fn the_engine_knows_no_http() {
        let dir = root().join("server/src/workflow");
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            for layer in ["crate::http", "crate::state", "axum::", "hyper::", "http::"] {
                let named = without_tests(&text).lines().any(|l| !l.trim_start().starts_with("//") && l.contains(layer));
                assert!(!named, "{} names {layer}", file.display());
            }
        }
    }

    /// The checks see what they look for: a circle made in a scratch crate
    /// is found, and so is a name declared twice.
    #[test]
    fn the_checks_find_a_circle_and_a_repeated_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = [\"server\"]\n").unwrap();
        let src = dir.path().join("server/src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
        std::fs::write(src.join("a/mod.rs"), "pub mod inner;\nuse crate::b::Thing;\npub struct Twice;\n").unwrap();
        std::fs::write(src.join("a/inner.rs"), "use super::Twice;\n").unwrap();
        std::fs::write(src.join("b.rs"), "use crate::{a::Twice, c};\npub struct Thing;\nimpl Iterator for Thing {\n    type Item = u8;\n}\n#[cfg(test)]\nmod t {\n    struct Twice;\n}\n").unwrap();
        let circles = import_circles(dir.path());
        assert_eq!(circles, [("server".to_owned(), vec!["a".to_owned(), "b".to_owned()])]);
        let repeated = repeated_type_names(dir.path());
        assert_eq!(repeated.keys().collect::<Vec<_>>(), ["Twice"], "{repeated:?}");
        std::fs::write(src.join("b.rs"), "pub struct Thing;\n").unwrap();
        assert!(import_circles(dir.path()).is_empty(), "a one-way import is no circle");
    }
}
