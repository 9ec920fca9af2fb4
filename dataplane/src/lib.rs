//! video-resizer data plane: `GET /videos/a.mp4?derivative=mobile` → resolve the origin →
//! cache lookup → single-flight → fetch the source → ffmpeg → store → serve with ranges.
//!
//! Each stage of the request path is its own module with its own error type; `service`
//! composes them and `error` turns every failure into a response in one place.

pub mod admin;
pub mod admission;
pub mod app;
pub mod auth;
pub mod body;
pub mod cache;
pub mod config;
pub mod error;
pub mod fixtures;
pub mod flight;
pub mod kube;
pub mod metrics;
pub mod origin;
pub mod params;
pub mod runtime;
pub mod s3;
pub mod serve;
pub mod server;
pub mod service;
pub mod signing;
pub mod telemetry;
pub mod transcode;
pub mod variant;
