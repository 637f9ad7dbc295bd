//! A workflow: Dify's DSL loaded and checked once (`dsl`, `template`), run
//! node by node (`engine`), its events written in Dify's wire shapes
//! (`events`). Nothing here knows HTTP.

pub mod dsl;
pub mod engine;
pub mod events;
pub mod persist;
pub mod template;
