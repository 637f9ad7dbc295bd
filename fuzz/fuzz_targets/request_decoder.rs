//! The run and stop request decoders on arbitrary bodies, against the
//! Start→End app and the app with every Start variable type: a payload or an
//! `ApiError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server::workflow::dsl::Workflow;
use std::sync::LazyLock;

static WORKFLOWS: LazyLock<Vec<Workflow>> = LazyLock::new(|| {
    [include_str!("../../fixtures/workflows/start_end.yml"), include_str!("../../fixtures/workflows/all_inputs.yml")]
        .into_iter()
        .map(|text| server::workflow::dsl::parse(std::path::Path::new("fixture.yml"), text).expect("fixture loads"))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    for workflow in WORKFLOWS.iter() {
        let _ = server::http::request::decode_run(data, workflow);
    }
    let _ = server::http::request::decode_stop(data);
});
