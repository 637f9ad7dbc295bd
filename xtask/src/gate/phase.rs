//! What a gate round drives, phase by phase: the `flowbench ab` scenario of
//! each, its app's key in both stacks' lines, and its arguments.

use super::GateArgs;
use anyhow::bail;
use schema::ab::AbScenario;
use schema::load::Mode;
use schema::stack::StackInfo;

/// What a round drives, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Blocking Start→End runs, closed model, saturating the core.
    Empty,
    /// Start→LLM→End streams, closed model, saturating the core.
    Llm,
    /// Streaming Start→End runs at a light Poisson rate (`--ttfe-rate`):
    /// the time to the first event without queueing. Under saturation it is
    /// mostly how the kernel interleaves the two stacks, and A/A runs raised
    /// false alarms (docs/gate.md). The first event of an llm run
    /// takes the same path; what follows it is the llm phase's.
    Ttfe,
}

impl Phase {
    pub(super) const ALL: [Phase; 3] = [Phase::Empty, Phase::Llm, Phase::Ttfe];

    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Empty => "empty",
            Phase::Llm => "llm",
            Phase::Ttfe => "ttfe",
        }
    }

    /// True when this phase's runs call the mock LLM. Only then does a
    /// stack that runs its mock in the server's process (a build from
    /// before the server had a process of its own) count the mock's work
    /// in its target CPU; in a phase that never calls it, that mock idles.
    pub(super) fn calls_the_mock(self) -> bool {
        match self {
            Phase::Empty | Phase::Ttfe => false,
            Phase::Llm => true,
        }
    }

    /// The `flowbench ab` scenario this phase drives.
    pub(super) fn scenario(self) -> AbScenario {
        match self {
            Phase::Empty | Phase::Ttfe => AbScenario::Empty,
            Phase::Llm => AbScenario::Llm,
        }
    }

    /// The scenario's name as the report spells it: what `--scenario` takes,
    /// and the fixture app's name in the stack line.
    pub(super) fn scenario_name(self) -> String {
        match serde_json::to_value(self.scenario()) {
            Ok(serde_json::Value::String(name)) => name,
            other => unreachable!("AbScenario serializes as a string, not {other:?}"),
        }
    }

    /// The API key of this phase's app, which both stacks must share
    /// (`flowbench ab` takes one key for both sides).
    pub(super) fn api_key<'a>(self, a: &'a StackInfo, b: &StackInfo) -> anyhow::Result<&'a str> {
        let app = self.scenario_name();
        let (key_a, key_b) = (a.api_key(&app)?, b.api_key(&app)?);
        if key_a != key_b {
            bail!("the two stacks serve the {app} app under different API keys ({key_a:?}, {key_b:?})");
        }
        Ok(key_a)
    }

    /// `flowbench ab` arguments for this phase.
    pub(super) fn ab_args(self, args: &GateArgs, api_key: &str) -> Vec<String> {
        let mut out = vec!["--scenario".to_owned(), self.scenario_name()];
        if self == Phase::Ttfe {
            out.extend(["--mode".to_owned(), Mode::Streaming.as_str().to_owned()]);
        }
        out.extend(["--api-key".to_owned(), api_key.to_owned()]);
        match self {
            Phase::Empty | Phase::Llm => out.extend(["--users".into(), args.load.users.to_string()]),
            Phase::Ttfe => out.extend(["--poisson".into(), "--users".into(), "8".into(), "--rate".into(), args.ttfe_rate.to_string()]),
        }
        out
    }
}
