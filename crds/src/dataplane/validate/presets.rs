//! Validation of `derivatives`, `responsive`, `params` and `signing`.

use super::*;

/// `derivatives`: names and values.
pub(super) fn derivatives(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    for (name, d) in &cfg.derivatives {
        let p = format!("derivatives.{name}");
        validate_name(name, &p, errs);
        validate_derivative(d, &p, errs);
    }
}

/// `responsive`: breakpoints in order, known derivatives, hint thresholds.
pub(super) fn responsive(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    let r = &cfg.responsive;
    let known = |n: &str| cfg.derivatives.contains_key(n);
    let mut last_max: Option<u32> = None;
    for (i, b) in r.breakpoints.iter().enumerate() {
        let p = format!("responsive.breakpoints[{i}]");
        if !known(&b.derivative) {
            errs.push(
                format!("{p}.derivative"),
                format!("unknown derivative {:?}", b.derivative),
            );
        }
        match b.max_width {
            Some(w) => {
                if w == 0 {
                    errs.push(format!("{p}.maxWidth"), "must be positive");
                }
                if last_max.is_some_and(|l| w <= l) {
                    errs.push(
                        format!("{p}.maxWidth"),
                        "breakpoints must be in ascending maxWidth order",
                    );
                }
                last_max = Some(w);
            }
            None if i + 1 != r.breakpoints.len() => {
                errs.push(
                    format!("{p}.maxWidth"),
                    "only the last breakpoint may omit maxWidth",
                );
            }
            None => {}
        }
    }
    if let Some(dd) = &r.device_derivatives {
        for (field, v) in [
            ("mobile", &dd.mobile),
            ("tablet", &dd.tablet),
            ("desktop", &dd.desktop),
        ] {
            if let Some(n) = v {
                if !known(n) {
                    errs.push(
                        format!("responsive.deviceDerivatives.{field}"),
                        format!("unknown derivative {n:?}"),
                    );
                }
            }
        }
    }
    for (field, v) in [
        (
            "constrainedNetworkDerivative",
            &r.constrained_network_derivative,
        ),
        ("defaultDerivative", &r.default_derivative),
    ] {
        if let Some(n) = v {
            if !known(n) {
                errs.push(
                    format!("responsive.{field}"),
                    format!("unknown derivative {n:?}"),
                );
            }
        }
    }
    if !(r.slow_downlink_mbps.is_finite() && r.slow_downlink_mbps >= 0.0) {
        errs.push(
            "responsive.slowDownlinkMbps",
            "must be a non-negative number",
        );
    }
}

/// `params`: overridable and bypass parameter names.
pub(super) fn params(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    for (i, name) in cfg.params.derivative_overrides.iter().enumerate() {
        if !OVERRIDABLE_PARAMS.contains(&name.as_str()) {
            errs.push(
                format!("params.derivativeOverrides[{i}]"),
                format!(
                    "unknown parameter {name:?}; expected one of {}",
                    OVERRIDABLE_PARAMS.join(", ")
                ),
            );
        }
    }
    for (i, name) in cfg.params.bypass_params.iter().enumerate() {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errs.push(
                format!("params.bypassParams[{i}]"),
                "must be a plain parameter name",
            );
        }
    }
}

/// `signing`: a required signature needs keys.
pub(super) fn signing(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    if !(60..=31_536_000).contains(&cfg.signing.max_lifetime_seconds) {
        errs.push(
            "signing.maxLifetimeSeconds",
            "must be between 60 and 31536000 (one year)",
        );
    }
    if cfg.signing.required && cfg.signing.key_files.is_empty() {
        errs.push(
            "signing.keyFiles",
            "at least one key file is required when signing.required is true",
        );
    }
}
