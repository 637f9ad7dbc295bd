//! What the xtask test binaries share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// This profile's `flowbench`, built when the run has not built it.
pub fn flowbench() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_xtask")).with_file_name("flowbench");
    if !path.exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status =
            Command::new(env!("CARGO")).args(["build", "-p", "flowbench", "--bin", "flowbench"]).current_dir(root).status().unwrap();
        assert!(status.success());
    }
    path
}
