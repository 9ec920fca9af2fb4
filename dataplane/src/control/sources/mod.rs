//! Config sources, in tiers: built-in defaults, then a file ([`file`](mod@file)), then the live
//! ConfigMaps of a `VideoResizerConfig` ([`configmaps`]).

pub mod configmaps;
pub mod file;
