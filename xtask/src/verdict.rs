//! The verdict on one compared figure, shared by `bench-compare` and `gate`:
//! each decides by its own rule (compare.rs, gate/verdict.rs), and both
//! print, serialize and exit on the same words.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeVerdict {
    /// Worse past the floor (gate) or the noise threshold (bench-compare).
    Regressed,
    /// Better past the floor or the noise threshold.
    Improved,
    /// Gate: any change is smaller than the floor.
    Pass,
    /// Gate: too noisy to tell a floor-sized regression from none.
    Unresolved,
    /// bench-compare: the interval reaches inside the noise threshold.
    NonSignificant,
}

impl ChangeVerdict {
    /// The word printed in tables and written to JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeVerdict::Regressed => "Regressed",
            ChangeVerdict::Improved => "Improved",
            ChangeVerdict::Pass => "Pass",
            ChangeVerdict::Unresolved => "Unresolved",
            ChangeVerdict::NonSignificant => "NonSignificant",
        }
    }
}

impl fmt::Display for ChangeVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed word, the `Debug` word (the gate's advisory rows) and
    /// the serialized word are one and the same.
    #[test]
    fn one_word_per_verdict() {
        for v in [
            ChangeVerdict::Regressed,
            ChangeVerdict::Improved,
            ChangeVerdict::Pass,
            ChangeVerdict::Unresolved,
            ChangeVerdict::NonSignificant,
        ] {
            assert_eq!(v.to_string(), format!("{v:?}"));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }
}
