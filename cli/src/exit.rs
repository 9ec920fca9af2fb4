//! Exit codes (stable: scripts rely on them) and the CLI's error type, which carries one.

use std::fmt;

/// Success.
pub const OK: u8 = 0;
/// The command ran and found problems: invalid config, failed prewarm or purge requests.
pub const FAILED: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// The Kubernetes API or a data plane could not be reached, or a wait timed out.
pub const UNAVAILABLE: u8 = 3;
/// The config, or the revision asked for, does not exist.
pub const NOT_FOUND: u8 = 4;
/// The API server refused the request (forbidden, invalid).
pub const REFUSED: u8 = 5;

/// An error that ends the command, with its exit code. The message names what failed and
/// never contains a token.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// Classifies a Kubernetes API error: 404 → [`NOT_FOUND`], 401/403/409/422 → [`REFUSED`],
    /// anything else (connection, timeouts, 5xx) → [`UNAVAILABLE`].
    pub fn from_kube(what: &str, e: kube::Error) -> CliError {
        match &e {
            kube::Error::Api(s) if s.code == 404 => {
                CliError::new(NOT_FOUND, format!("{what}: not found"))
            }
            kube::Error::Api(s) if [401, 403, 409, 422].contains(&s.code) => CliError::new(
                REFUSED,
                format!("{what}: the API server refused ({}): {}", s.code, s.message),
            ),
            _ => CliError::new(UNAVAILABLE, format!("{what}: {e}")),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
