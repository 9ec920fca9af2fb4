//! Admin authentication and the audit log: scoped bearer tokens read from files (mounted
//! Secrets), compared in constant time, and an append-only JSON line per admin action.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use vr_crds::dataplane::{AdminToken, Scope};
use vr_crds::ValidationErrors;

/// Shortest token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The accepted tokens (as SHA-256 digests, so comparison time does not depend on length).
#[derive(Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

struct Entry {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// Who was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Whether this principal may act with `scope` (`admin` may do everything).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
    }
}

impl Tokens {
    /// Reads every token file; errors name the config path (`admin.tokens[0].tokenFile`).
    pub fn load(tokens: &[AdminToken], base: &Path) -> Result<Self, ValidationErrors> {
        let mut errs = Vec::new();
        let mut entries = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let path = resolve(base, &t.token_file);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let token = trim(&bytes);
                    if token.len() < MIN_TOKEN_BYTES {
                        errs.push(vr_crds::dataplane::FieldError {
                            path: format!("admin.tokens[{i}].tokenFile"),
                            message: format!(
                                "token in {} is shorter than {MIN_TOKEN_BYTES} bytes",
                                path.display()
                            ),
                        });
                    } else {
                        entries.push(Entry {
                            name: t.name.clone(),
                            digest: Sha256::digest(token).into(),
                            scopes: t.scopes.clone(),
                        });
                    }
                }
                Err(e) => errs.push(vr_crds::dataplane::FieldError {
                    path: format!("admin.tokens[{i}].tokenFile"),
                    message: format!("cannot read {}: {e}", path.display()),
                }),
            }
        }
        if errs.is_empty() {
            Ok(Tokens { entries })
        } else {
            Err(ValidationErrors(errs))
        }
    }

    /// Builds from literal tokens (tests, tools).
    pub fn from_literals(list: &[(&str, &str, Vec<Scope>)]) -> Self {
        Tokens {
            entries: list
                .iter()
                .map(|(name, token, scopes)| Entry {
                    name: (*name).to_owned(),
                    digest: Sha256::digest(token.as_bytes()).into(),
                    scopes: scopes.clone(),
                })
                .collect(),
        }
    }

    /// Whether any token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Authenticates an `Authorization` header value. Every configured token is compared (no
    /// early exit), each in constant time, so timing reveals neither which token nor how much
    /// of it matched.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<Principal> {
        let presented = authorization?.strip_prefix("Bearer ")?.trim();
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&digest)) {
                found = Some(e);
            }
        }
        found.map(|e| Principal {
            name: e.name.clone(),
            scopes: e.scopes.clone(),
        })
    }
}

/// Resolves a file path from the config relative to the config file's directory.
pub fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Trims ASCII whitespace at both ends (Secrets often end with a newline).
pub fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord<'a> {
    /// RFC 3339 UTC time.
    pub time: String,
    /// Token name, or `anonymous`.
    pub who: &'a str,
    /// Client address.
    pub peer: String,
    /// Action, e.g. `purge`.
    pub action: &'a str,
    /// What was acted on (tag, key…).
    pub target: String,
    /// `ok`, `denied`, `error`.
    pub result: &'a str,
    /// Detail (e.g. objects removed).
    pub detail: String,
    pub request_id: &'a str,
}

/// Append-only audit log: every admin action, allowed or not, becomes one JSON line in the
/// file (when configured) and a `tracing` event with target `audit`.
pub struct AuditLog {
    file: Option<Mutex<std::fs::File>>,
}

impl AuditLog {
    /// Opens (creating, appending) the audit file, or logs only to tracing when `None`.
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(AuditLog { file })
    }

    /// Writes one record. A write failure is logged, never fatal to the action.
    pub fn record(&self, rec: &AuditRecord<'_>) {
        let line = serde_json::to_string(rec).unwrap_or_default();
        tracing::info!(target: "audit", who = rec.who, action = rec.action, target_ = %rec.target, result = rec.result, detail = %rec.detail, request_id = rec.request_id, "admin action");
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = writeln!(f, "{line}") {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
    }
}

/// Current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    httpdate_to_rfc3339(std::time::SystemTime::now())
}

fn httpdate_to_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_with_their_scopes_and_admin_implies_all() {
        let t = Tokens::from_literals(&[
            ("ops", "0123456789abcdef-ops", vec![Scope::Purge]),
            ("root", "0123456789abcdef-root", vec![Scope::Admin]),
        ]);
        let p = t
            .authenticate(Some("Bearer 0123456789abcdef-ops"))
            .expect("ops");
        assert_eq!(p.name, "ops");
        assert!(p.allows(Scope::Purge));
        assert!(!p.allows(Scope::Read));
        let r = t
            .authenticate(Some("Bearer 0123456789abcdef-root"))
            .expect("root");
        assert!(r.allows(Scope::Prewarm));
    }

    #[test]
    fn wrong_missing_or_malformed_tokens_are_refused() {
        let t = Tokens::from_literals(&[("ops", "0123456789abcdef-ops", vec![Scope::Read])]);
        assert!(t.authenticate(None).is_none());
        assert!(t.authenticate(Some("0123456789abcdef-ops")).is_none());
        assert!(t
            .authenticate(Some("Bearer 0123456789abcdef-opz"))
            .is_none());
        assert!(t.authenticate(Some("Basic b3BzOm9wcw==")).is_none());
    }

    #[test]
    fn short_or_missing_token_files_are_config_errors_naming_the_field() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("short"), "abc\n").expect("write");
        let cfg = vec![
            AdminToken {
                name: "a".into(),
                token_file: "short".into(),
                scopes: vec![Scope::Read],
            },
            AdminToken {
                name: "b".into(),
                token_file: "missing".into(),
                scopes: vec![Scope::Read],
            },
        ];
        let Err(errs) = Tokens::load(&cfg, dir.path()) else {
            panic!("must fail")
        };
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["admin.tokens[0].tokenFile", "admin.tokens[1].tokenFile"]
        );
    }

    #[test]
    fn rfc3339_dates_are_correct() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(httpdate_to_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            httpdate_to_rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
    }
}
