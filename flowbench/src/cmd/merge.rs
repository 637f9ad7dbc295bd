//! `flowbench merge`: the shards' JSON reports → one report, printed and
//! written; the exit code as `run`'s (INVALID if any shard was, 5 for
//! failures over `--max-error-rate`, 4 for a crossed threshold).

use crate::cli::MergeArgs;
use crate::exit;

pub fn execute(args: &MergeArgs) -> anyhow::Result<i32> {
    // A report that does not read is a bad argument: exit 2, as for a bad flag.
    let reports = match super::read_reports(&args.reports) {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let mut merged = match crate::report::merge::merge(&reports) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    merged.max_error_rate = Some(args.errors.max_error_rate);
    print!("{}", merged.to_text());
    super::run::write_outputs(&merged, &args.files)?;
    let code = super::run::exit_code(&merged, args.errors.max_error_rate);
    super::run::say_why(&merged, code, args.errors.max_error_rate);
    Ok(code)
}
