//! The edge: the socket, the request handler that wraps the pipeline (canary fallback, request
//! metrics, the headers every answer carries), and the admin port.
//!
//! Errors from every layer become responses in [`crate::error::response`]; the edge only adds
//! what is the same for every answer.

pub mod admin;
pub mod headers;
pub mod server;
pub mod service;
