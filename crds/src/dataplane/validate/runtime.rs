//! Validation of `limits`, `cache`, `passthrough`, `resilience`, `admin` and `debug`.

use super::*;
use std::collections::BTreeSet;

/// `limits`: every bound within its range.
pub(super) fn limits(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    let l = &cfg.limits;
    let ranges: [(&str, u64, u64, u64); 16] = [
        ("maxInputBytes", l.max_input_bytes, 1, u64::MAX),
        (
            "maxDurationSeconds",
            l.max_duration_seconds.into(),
            1,
            86_400,
        ),
        ("maxPixels", l.max_pixels, 1, 1 << 32),
        ("maxStreams", l.max_streams.into(), 1, 64),
        ("probeSizeBytes", l.probe_size_bytes, 32, 1 << 30),
        (
            "maxConcurrentTransforms",
            l.max_concurrent_transforms.into(),
            0,
            1024,
        ),
        (
            "queueTimeoutSeconds",
            l.queue_timeout_seconds.into(),
            1,
            3600,
        ),
        (
            "transformTimeoutSeconds",
            l.transform_timeout_seconds.into(),
            1,
            86_400,
        ),
        (
            "fetchTimeoutSeconds",
            l.fetch_timeout_seconds.into(),
            1,
            3600,
        ),
        ("ffmpegThreads", l.ffmpeg_threads.into(), 1, 64),
        ("maxOutputPixels", l.max_output_pixels, 100, 1 << 28),
        (
            "maxSpritesheetPixels",
            l.max_spritesheet_pixels,
            100,
            1 << 28,
        ),
        ("maxOutputFrames", l.max_output_frames, 1, 10_000_000),
        ("maxOutputBytes", l.max_output_bytes, 1 << 10, 1 << 40),
        (
            "ffmpegMemoryBytes",
            l.ffmpeg_memory_bytes,
            // Debian's ffmpeg needs ~300 MiB of address space just to load its libraries.
            512 << 20,
            1 << 40,
        ),
        (
            "ffprobeMemoryBytes",
            l.ffprobe_memory_bytes,
            512 << 20,
            1 << 40,
        ),
    ];
    for (field, v, lo, hi) in ranges {
        if v < lo || v > hi {
            errs.push(
                format!("limits.{field}"),
                format!("must be between {lo} and {hi}"),
            );
        }
    }
    if l.queue_depth > 100_000 {
        errs.push("limits.queueDepth", "must be at most 100000");
    }
}

/// `cache`: lifetimes, layer sizes, the shared bucket, the tag prefix.
pub(super) fn cache(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    validate_ttl(&cfg.cache.ttl, "cache.ttl", errs);
    if cfg.cache.memory.max_object_bytes > cfg.cache.memory.max_bytes
        && cfg.cache.memory.max_bytes > 0
    {
        errs.push(
            "cache.memory.maxObjectBytes",
            "must not exceed cache.memory.maxBytes",
        );
    }
    if let Some(d) = &cfg.cache.disk {
        if d.path.trim().is_empty() {
            errs.push("cache.disk.path", "must not be empty");
        }
        if d.max_bytes == 0 {
            errs.push("cache.disk.maxBytes", "must be positive");
        }
    }
    if let Some(sh) = &cfg.cache.shared {
        validate_s3_bucket(&sh.bucket, "cache.shared", errs);
        let prefix_ok = sh.prefix.is_empty()
            || (sh.prefix.ends_with('/')
                && !sh.prefix.starts_with('/')
                && sh.prefix.split('/').all(|seg| seg != ".." && seg != ".")
                && sh.prefix.len() <= 256);
        if !prefix_ok {
            errs.push(
                "cache.shared.prefix",
                "must be empty or a relative key prefix ending in '/' (no '.' or '..' segments)",
            );
        }
        if sh.timeout_seconds == 0 || sh.timeout_seconds > 600 {
            errs.push("cache.shared.timeoutSeconds", "must be between 1 and 600");
        }
        if sh.purge_poll_seconds == 0 || sh.purge_poll_seconds > 3600 {
            errs.push(
                "cache.shared.purgePollSeconds",
                "must be between 1 and 3600",
            );
        }
    }
    if !tag_ok(&format!("{}x", cfg.cache.tag_prefix)) {
        errs.push(
            "cache.tagPrefix",
            "tags use letters, digits, '-', '_', '.', ':'",
        );
    }
}

/// `passthrough`: video extensions.
pub(super) fn passthrough(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    for (i, ext) in cfg.passthrough.video_extensions.iter().enumerate() {
        if ext.is_empty()
            || ext.len() > 8
            || !ext
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            errs.push(
                format!("passthrough.videoExtensions[{i}]"),
                "lower-case letters and digits, no dot, at most 8",
            );
        }
    }
}

/// `resilience`: breaker and retry settings.
pub(super) fn resilience(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    let rs = &cfg.resilience;
    if rs.failure_threshold == 0 {
        errs.push("resilience.failureThreshold", "must be at least 1");
    }
    if rs.window_seconds == 0 {
        errs.push("resilience.windowSeconds", "must be at least 1");
    }
    if rs.open_seconds == 0 {
        errs.push("resilience.openSeconds", "must be at least 1");
    }
    if rs.attempts == 0 || rs.attempts > 10 {
        errs.push("resilience.attempts", "must be between 1 and 10");
    }
    if rs.base_delay_ms > rs.max_delay_ms {
        errs.push(
            "resilience.baseDelayMs",
            "must not exceed resilience.maxDelayMs",
        );
    }
}

/// `admin` tokens and `debug` networks.
pub(super) fn admin(cfg: &DataPlaneConfig, errs: &mut ValidationErrors) {
    let mut token_names = BTreeSet::new();
    for (i, t) in cfg.admin.tokens.iter().enumerate() {
        let p = format!("admin.tokens[{i}]");
        validate_name(&t.name, &format!("{p}.name"), errs);
        if !token_names.insert(t.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!("duplicate token name {:?}", t.name),
            );
        }
        if t.token_file.trim().is_empty() {
            errs.push(format!("{p}.tokenFile"), "must not be empty");
        }
        if t.scopes.is_empty() {
            errs.push(format!("{p}.scopes"), "at least one scope is required");
        }
    }
    for (i, n) in cfg.debug.allowed_networks.iter().enumerate() {
        if n.parse::<ipnet::IpNet>().is_err() && n.parse::<std::net::IpAddr>().is_err() {
            errs.push(
                format!("debug.allowedNetworks[{i}]"),
                format!("{n:?} is not a CIDR such as 10.0.0.0/8"),
            );
        }
    }
}
