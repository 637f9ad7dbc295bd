//! What the tests need from the system, installed before they run: the
//! programs they start (PostgreSQL's server, a headless browser, valgrind,
//! python3 with pip, curl). On Debian as root, `apt-get` installs what is
//! missing; elsewhere one line names what to install, and the task exits 2
//! before anything is built.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

/// A program the tests start, how to tell it is here, and its Debian package.
struct Need {
    what: &'static str,
    present: fn() -> bool,
    package: &'static str,
}

/// Browsers the HTML test can drive, by command; the first found is passed
/// to the tests as `FLOWBENCH_BROWSER` (Debian names it `chromium`; a CI
/// runner may have Google's build instead).
pub const BROWSERS: [&str; 4] = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

const NEEDS: [Need; 7] = [
    Need { what: "valgrind (the instruction counts)", present: || answers("valgrind", "--version"), package: "valgrind" },
    Need { what: "python3 (the server's urllib client)", present: || answers("python3", "--version"), package: "python3" },
    Need {
        what: "pip (the deploy tests' linters)",
        present: || answers_args("python3", &["-m", "pip", "--version"]),
        package: "python3-pip",
    },
    Need { what: "curl (a client of the server's tests)", present: || answers("curl", "--version"), package: "curl" },
    Need { what: "PostgreSQL's server (the run store's tests)", present: postgres_present, package: "postgresql" },
    Need { what: "a headless browser (the HTML report's test)", present: || browser().is_some(), package: "chromium" },
    Need {
        what: "Prometheus and promtool (the /metrics and --prometheus tests)",
        present: || answers("prometheus", "--version") && answers("promtool", "--version"),
        package: "prometheus",
    },
];

/// The first browser of `BROWSERS` on this machine.
pub fn browser() -> Option<&'static str> {
    BROWSERS.into_iter().find(|b| answers(b, "--version"))
}

/// Installs what is missing (Debian, as root) or names it and fails.
pub fn system_packages() -> anyhow::Result<()> {
    let missing: Vec<&Need> = NEEDS.iter().filter(|n| !(n.present)()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    let debian = Path::new("/etc/debian_version").exists() && answers("apt-get", "--version");
    if !debian || !is_root() {
        let whats: Vec<&str> = missing.iter().map(|n| n.what).collect();
        bail!("the tests need {}: install them (on Debian: apt-get install {}) and run again", whats.join(", "), packages.join(" "));
    }
    eprintln!("xtask: installing what the tests need: apt-get install {}", packages.join(" "));
    let updated = Command::new("apt-get").args(["update", "-qq"]).status().context("running apt-get update")?;
    if !updated.success() {
        bail!("apt-get update failed ({updated}); the tests need: apt-get install {}", packages.join(" "));
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get install")?;
    if !installed.success() {
        bail!("apt-get install {} failed ({installed})", packages.join(" "));
    }
    let still: Vec<&str> = NEEDS.iter().filter(|n| !(n.present)()).map(|n| n.what).collect();
    if !still.is_empty() {
        bail!("after apt-get install, still missing: {}", still.join(", "));
    }
    Ok(())
}

fn answers(command: &str, arg: &str) -> bool {
    answers_args(command, &[arg])
}

fn answers_args(command: &str, args: &[&str]) -> bool {
    Command::new(command).args(args).output().is_ok_and(|o| o.status.success())
}

fn postgres_present() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.filter_map(Result::ok).any(|v| v.path().join("bin/initdb").exists()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
