//! `flowbench report A.json [B.json …]`: saved reports read again. One is
//! printed as `run` printed it; with more, each later one is compared with
//! the first, figure by figure, with what a pair of runs can say.

use super::write_file;
use crate::cli::ReportArgs;
use crate::exit;
use crate::report::Report;
use crate::report::compare::compare;

pub fn execute(args: &ReportArgs) -> anyhow::Result<i32> {
    let mut reports = Vec::new();
    for path in &args.reports {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("error: reading {name}: {e}");
                return Ok(exit::USAGE);
            }
        };
        match serde_json::from_slice::<Report>(&bytes) {
            Ok(report) => reports.push((name, report)),
            Err(e) => {
                eprintln!("error: {name} is not a flowbench run --json report: {e}");
                return Ok(exit::USAGE);
            }
        }
    }
    let out = match reports.split_first() {
        Some(((_, only), [])) => only.to_markdown(),
        Some(((a_name, a), rest)) => {
            rest.iter().map(|(b_name, b)| compare(a_name, a, b_name, b).to_markdown()).collect::<Vec<_>>().join("\n")
        }
        None => unreachable!("clap requires one report"),
    };
    print!("{out}");
    if let Some(path) = &args.markdown {
        write_file(path, &out)?;
    }
    if let Some(path) = &args.html {
        write_file(path, crate::report::html::render(&reports)?)?;
    }
    Ok(exit::OK)
}
