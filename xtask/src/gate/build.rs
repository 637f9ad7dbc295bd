//! The gate's builds: each revision checked out as a git worktree under
//! `target/gate/` (or the working tree as it is) and built in release into
//! one shared target dir; each revision's `flowbench` is kept and reused.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `rev` (a worktree under target/gate/) or the working tree; returns its `flowbench`.
pub(super) fn build(root: &Path, rev: Option<&str>) -> anyhow::Result<PathBuf> {
    let gate_dir = root.join("target/gate");
    let target_dir = gate_dir.join("target");
    std::fs::create_dir_all(gate_dir.join("bin"))?;
    let (source, name) = match rev {
        None => (root.to_owned(), "flowbench-worktree".to_owned()),
        Some(rev) => {
            let sha = git(root, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
                .with_context(|| format!("{rev:?} is not a revision"))?;
            let bin = gate_dir.join("bin").join(format!("flowbench-{sha}"));
            if bin.exists() {
                return Ok(bin);
            }
            let tree = gate_dir.join(format!("src-{sha}"));
            if !tree.exists() {
                git(root, &["worktree", "add", "--detach", "--force", &tree.display().to_string(), &sha])?;
            }
            (tree, format!("flowbench-{sha}"))
        }
    };
    eprintln!("gate: building {} in release", rev.unwrap_or("the working tree"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--bin", "flowbench"])
        .current_dir(&source)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()?;
    if !status.success() {
        bail!("building {} failed", rev.unwrap_or("the working tree"));
    }
    let bin = gate_dir.join("bin").join(name);
    std::fs::copy(target_dir.join("release/flowbench"), &bin)?;
    Ok(bin)
}

/// `git ARGS` in `root`: its trimmed stdout, or its stderr as the error.
fn git(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git").args(args).current_dir(root).output()?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
