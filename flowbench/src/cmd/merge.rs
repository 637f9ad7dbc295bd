//! `flowbench merge`: the shards' JSON reports → one report, printed and
//! written; the exit code as `run`'s (INVALID if any shard was, 4 for a
//! crossed threshold).

use crate::cli::MergeArgs;
use crate::exit;
use crate::report::Report;
use anyhow::Context;

pub fn execute(args: &MergeArgs) -> anyhow::Result<i32> {
    let mut reports = Vec::new();
    for path in &args.reports {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
        let report: Report = serde_json::from_slice(&bytes).with_context(|| format!("{name} is not a flowbench run --json report"))?;
        reports.push((name, report));
    }
    let merged = match crate::report::merge::merge(&reports) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    print!("{}", merged.to_text());
    super::run::write_outputs(&merged, &args.files)?;
    Ok(super::run::exit_code(&merged))
}
