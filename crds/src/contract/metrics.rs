//! Metric names and label keys of the data plane's exposition, read by the operator's canary
//! analysis (scrape and PromQL) and its HPA. Each metric is declared once: the name the data
//! plane registers (under the prefix [`PREFIX`]) and the name as exposed derive from one literal.

/// The prefix literal, so exposed names can be built at compile time.
macro_rules! prefix {
    () => {
        "vr"
    };
}

/// Prefix of every data-plane metric (`vr_…`).
pub const PREFIX: &str = prefix!();

/// Declares a metric: `$name` is what the data plane registers (without prefix and suffix),
/// `$exposed` the series name as scraped.
macro_rules! metric {
    ($(#[$doc:meta])* $name:ident = $s:literal, $exposed:ident = $suffix:literal) => {
        $(#[$doc])*
        pub const $name: &str = $s;
        #[doc = concat!("`", prefix!(), "_", $s, $suffix, "` as exposed (see [`", stringify!($name), "`]).")]
        pub const $exposed: &str = concat!(prefix!(), "_", $s, $suffix);
    };
}

metric!(
    /// Requests served, by status class, cache result, revision and role (a counter).
    REQUESTS = "requests", REQUESTS_TOTAL = "_total"
);
metric!(
    /// Request latency by revision, role and cache result (a histogram).
    REQUEST_DURATION = "request_duration_seconds", REQUEST_DURATION_BUCKET = "_bucket"
);
metric!(
    /// Active config revisions, 1 per revision and role (a gauge).
    CONFIG_ACTIVE = "config_active", CONFIG_ACTIVE_SERIES = ""
);
metric!(
    /// Transforms waiting for a slot (a gauge; the HPA's optional pods metric).
    TRANSFORM_QUEUE_DEPTH = "transform_queue_depth", TRANSFORM_QUEUE_DEPTH_SERIES = ""
);
metric!(
    /// Share of traffic the loaded canary takes, in basis points (a gauge).
    CANARY_WEIGHT = "canary_weight_basis_points", CANARY_WEIGHT_SERIES = ""
);

/// Label: the config revision that served (`r<N>`).
pub const LABEL_REVISION: &str = "revision";
/// Label: `stable` or `canary` ([`ROLE_STABLE`], [`ROLE_CANARY`]).
pub const LABEL_ROLE: &str = "role";
/// Label: how the answer was produced (`HIT`, `MISS`, … see [`super::headers::CACHE_STATUS`]).
pub const LABEL_CACHE: &str = "cache";
/// Label: `2xx`, `3xx`, `4xx`, `5xx`.
pub const LABEL_STATUS_CLASS: &str = "status_class";
/// Histogram bucket bound.
pub const LABEL_LE: &str = "le";

/// Value of [`LABEL_ROLE`] for the stable revision.
pub const ROLE_STABLE: &str = "stable";
/// Value of [`LABEL_ROLE`] for the canary revision.
pub const ROLE_CANARY: &str = "canary";
/// Value of [`LABEL_CACHE`] for a transformed request (a miss).
pub const CACHE_MISS: &str = "MISS";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_names_carry_the_prefix_and_suffix() {
        assert_eq!(REQUESTS_TOTAL, "vr_requests_total");
        assert_eq!(
            REQUEST_DURATION_BUCKET,
            "vr_request_duration_seconds_bucket"
        );
        assert_eq!(CONFIG_ACTIVE_SERIES, "vr_config_active");
        assert_eq!(TRANSFORM_QUEUE_DEPTH_SERIES, "vr_transform_queue_depth");
        assert!(REQUESTS_TOTAL.starts_with(PREFIX));
    }
}
