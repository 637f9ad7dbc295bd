//! `flowbench report A.json [B.json …]`: saved reports read again. One is
//! printed as `run` printed it; with more, each later one is compared with
//! the first, figure by figure, with what a pair of runs can say.

use super::write_file;
use crate::cli::ReportArgs;
use crate::exit;
use crate::report::compare::compare;

pub fn execute(args: &ReportArgs) -> anyhow::Result<i32> {
    let reports = match super::read_reports(&args.reports) {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
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
