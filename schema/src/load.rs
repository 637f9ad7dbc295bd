//! What a run's load was: the response `Mode` and the `LoadModel` (closed
//! or open, flat or by `Stage`s, with a closed model's `ThinkTime`), as the
//! report records them, and a load's share of `--shard I/N`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Blocking,
    Streaming,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Blocking => "blocking",
            Mode::Streaming => "streaming",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum LoadModel {
    Closed {
        users: u32,
        spawn_rate: f64,
    },
    Open {
        rate: f64,
        poisson: bool,
        connections: u32,
        /// Seeds the Poisson arrivals. Named apart in JSON: the report's load
        /// parameters flatten this model beside a `seed` of their own.
        #[serde(rename = "arrival_seed")]
        seed: u64,
    },
    /// Users by stages (a scenario file's `[[stages]] users = N`).
    RampingUsers {
        stages: Vec<Stage>,
        #[serde(default, skip_serializing_if = "ThinkTime::is_zero")]
        think_time: ThinkTime,
    },
    /// Arrivals per second by stages (`[[stages]] rate = R`).
    RampingRate {
        stages: Vec<Stage>,
        poisson: bool,
        connections: u32,
        #[serde(rename = "arrival_seed")]
        seed: u64,
    },
}

/// One stage: the level moves linearly to `target` over `duration_s`
/// (0: a step), from the last stage's target (0 before the first).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    pub duration_s: f64,
    pub target: f64,
}

/// A closed-model user's pause after each request: uniform in
/// `[min, max]`, seeded per user (Locust's `between`; `min = max`: constant).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThinkTime {
    pub min_s: f64,
    pub max_s: f64,
}

impl ThinkTime {
    pub fn is_zero(&self) -> bool {
        self.max_s <= 0.0
    }
}

impl LoadModel {
    /// Shard `index` (from 1) of `count` equal parts: users, rate and
    /// connections divided (global user k runs in shard k mod count), the
    /// arrivals' seed distinct; an error when a part would be empty.
    pub fn share(&self, index: u32, count: u32) -> Result<LoadModel, String> {
        let n = f64::from(count);
        let c = f64::from(index - 1);
        // Whole things (users, connections) dealt out as cards: k to k mod count.
        let split = |total: u32, what: &str| -> Result<u32, String> {
            let part = total / count + u32::from(index - 1 < total % count);
            if part == 0 { Err(format!("{total} {what} cannot be split {count} ways")) } else { Ok(part) }
        };
        Ok(match self {
            LoadModel::Closed { users, spawn_rate } => {
                let part = split(*users, "users")?;
                LoadModel::Closed { users: part, spawn_rate: spawn_rate * f64::from(part) / f64::from(*users) }
            }
            LoadModel::Open { rate, poisson, connections, seed } => LoadModel::Open {
                rate: rate / n,
                poisson: *poisson,
                connections: split(*connections, "connections")?,
                seed: seed.wrapping_add(u64::from(index - 1)),
            },
            LoadModel::RampingUsers { stages, think_time } => {
                // User j of this shard is global user j·count + c: it runs while
                // the level exceeds that, i.e. while (level − c) / count > j.
                let mut part = vec![Stage { duration_s: 0.0, target: -c / n }];
                part.extend(stages.iter().map(|s| Stage { duration_s: s.duration_s, target: (s.target - c) / n }));
                if part.iter().all(|s| s.target <= 0.0) {
                    return Err(format!("the stages' users cannot be split {count} ways"));
                }
                LoadModel::RampingUsers { stages: part, think_time: *think_time }
            }
            LoadModel::RampingRate { stages, poisson, connections, seed } => LoadModel::RampingRate {
                stages: stages.iter().map(|s| Stage { duration_s: s.duration_s, target: s.target / n }).collect(),
                poisson: *poisson,
                connections: split(*connections, "connections")?,
                seed: seed.wrapping_add(u64::from(index - 1)),
            },
        })
    }

    /// Workers the driver runs: one per user (the most any stage reaches),
    /// or one per connection.
    pub fn n_workers(&self) -> u32 {
        match self {
            LoadModel::Closed { users, .. } => *users,
            LoadModel::Open { connections, .. } | LoadModel::RampingRate { connections, .. } => *connections,
            LoadModel::RampingUsers { stages, .. } => stages.iter().map(|s| s.target).fold(0.0, f64::max).ceil() as u32,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, LoadModel::Open { .. } | LoadModel::RampingRate { .. })
    }

    /// The pause after each request (closed models; none in the open ones).
    pub fn think_time(&self) -> ThinkTime {
        match self {
            LoadModel::RampingUsers { think_time, .. } => *think_time,
            _ => ThinkTime::default(),
        }
    }
}
