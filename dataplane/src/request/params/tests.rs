//! Unit and property tests of the URL API.

use super::*;
use crate::request::variant::Variant;
use http::header::HeaderName;
use proptest::prelude::*;
use vr_crds::dataplane::{DeviceDerivatives, ValidationMode};
use vr_crds::media::{format_time_ms, Compression, Fit, Format, Mode, Preload, Quality};
use vr_crds::DataPlaneConfig;

const BASE: &str = r#"
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
      - kind: local
        name: disk
        root: /srv/media
        path: '${name}.mp4'
derivatives:
  mobile: { width: 854, height: 640, loop: true }
  tablet: { width: 1280, height: 720 }
  desktop: { width: 1920, height: 1080, duration: 5m }
  thumbnail: { width: 640, height: 360, mode: frame, format: png, fit: cover, time: 2s }
  lowbw: { width: 426, height: 240, quality: low }
responsive:
  breakpoints:
    - { maxWidth: 854, derivative: mobile }
    - { maxWidth: 1280, derivative: tablet }
    - { derivative: desktop }
"#;

fn base_config() -> DataPlaneConfig {
    DataPlaneConfig::from_yaml(BASE).expect("test config is valid")
}

/// Compiles `cfg` after checking it is valid (as the config loader guarantees).
fn compiled(cfg: DataPlaneConfig) -> ParamsConfig {
    cfg.validate().expect("test config is valid");
    compile(&cfg)
}

fn strict() -> ParamsConfig {
    compiled(base_config())
}

fn lenient() -> ParamsConfig {
    let mut cfg = base_config();
    cfg.params.validation = ValidationMode::Lenient;
    compiled(cfg)
}

fn with(edit: impl FnOnce(&mut DataPlaneConfig)) -> ParamsConfig {
    let mut cfg = base_config();
    edit(&mut cfg);
    compiled(cfg)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    h
}

fn ok(query: &str, cfg: &ParamsConfig) -> Resolved {
    ok_with(query, &HeaderMap::new(), cfg)
}

fn ok_with(query: &str, h: &HeaderMap, cfg: &ParamsConfig) -> Resolved {
    match resolve(query, h, cfg) {
        Ok(r) => r,
        Err(e) => panic!("{query:?} should resolve: {e}"),
    }
}

fn variant(r: &Resolved) -> &Variant {
    match &r.transform {
        Transform::Variant(v) => v,
        Transform::Original => panic!("expected a variant, got the original"),
    }
}

fn v(query: &str, cfg: &ParamsConfig) -> Variant {
    variant(&ok(query, cfg)).clone()
}

/// The parameter names of a strict-mode refusal.
fn refused(query: &str, cfg: &ParamsConfig) -> Vec<String> {
    refused_with(query, &HeaderMap::new(), cfg)
}

fn refused_with(query: &str, h: &HeaderMap, cfg: &ParamsConfig) -> Vec<String> {
    match resolve(query, h, cfg) {
        Ok(r) => panic!("{query:?} should be refused, got {r:?}"),
        Err(e) => e.0.into_iter().map(|i| i.param).collect(),
    }
}

fn warned(r: &Resolved) -> Vec<&str> {
    r.warnings.iter().map(|i| i.param.as_str()).collect()
}

// ---------------------------------------------------------------- canonical names and values

#[test]
fn canonical_names_set_every_field_of_the_variant() {
    let got = v(
        "width=640&height=360&fit=pad&mode=video&time=5s&duration=1m30s&format=webm\
         &quality=high&compression=low&audio=false&fps=29.97&bitrate=800k",
        &strict(),
    );
    let mut want = Variant::new(Mode::Video);
    want.width = Some(640);
    want.height = Some(360);
    want.fit = Fit::Pad;
    want.format = Format::Webm;
    want.quality = Quality::High;
    want.compression = Compression::Low;
    want.time_ms = Some(5_000);
    want.duration_ms = Some(90_000);
    want.audio = false;
    want.fps_milli = Some(29_970);
    want.bitrate_kbps = Some(800);
    assert_eq!(got, want.normalized());
}

#[test]
fn spritesheets_take_an_image_count_and_frames_default_to_jpg() {
    let s = v("mode=spritesheet&imageCount=12&width=160", &strict());
    assert_eq!(s.image_count, Some(12));
    assert_eq!(s.format, Format::Jpg);
    assert_eq!(v("mode=frame&time=3", &strict()).time_ms, Some(3_000));
    assert_eq!(
        refused("mode=spritesheet&imageCount=0", &strict()),
        ["imageCount"]
    );
}

#[test]
fn playback_hints_are_returned_apart_from_the_variant() {
    let r = ok(
        "width=640&loop=true&autoplay=false&muted=true&preload=metadata",
        &strict(),
    );
    assert_eq!(
        r.hints,
        PlaybackHints {
            loop_: Some(true),
            autoplay: Some(false),
            muted: Some(true),
            preload: Some(Preload::Metadata),
        }
    );
    assert_eq!(variant(&r), &v("width=640", &strict()));
}

#[test]
fn values_are_percent_decoded_with_plus_as_space() {
    assert_eq!(
        v("fit=scale%2Ddown&width=640", &strict()).fit,
        Fit::ScaleDown
    );
    assert_eq!(
        v("time=1m%33%30s&width=640", &strict()).time_ms,
        Some(90_000)
    );
    assert_eq!(
        ok("filename=my%5Fclip", &strict()).filename.as_deref(),
        Some("my_clip")
    );
    assert_eq!(refused("filename=a+b", &strict()), ["filename"]);
    assert_eq!(refused("width=%36%34%30%ff", &strict()), ["width"]);
    assert_eq!(v("%77idth=640", &strict()).width, Some(640));
}

// ---------------------------------------------------------------- aliases

#[test]
fn every_alias_means_its_canonical_parameter() {
    let cfg = strict();
    for (alias, canonical) in [
        ("w=640", "width=640"),
        ("h=360", "height=360"),
        ("q=low&w=640", "quality=low&width=640"),
        ("f=webm&w=640", "format=webm&width=640"),
        ("imformat=h264&w=640", "format=mp4&width=640"),
        ("imformat=vp9&w=640", "format=webm&width=640"),
        ("obj-fit=crop&w=640&h=360", "fit=cover&width=640&height=360"),
        (
            "obj-fit=fill&w=640&h=360",
            "fit=contain&width=640&height=360",
        ),
        ("start=5s&w=640", "time=5s&width=640"),
        ("dur=10&w=640", "duration=10s&width=640"),
        ("mute=true&w=640", "audio=false&width=640"),
        ("mute=false&w=640", "audio=true&width=640"),
        ("impolicy=mobile", "derivative=mobile"),
    ] {
        assert_eq!(
            ok(alias, &cfg),
            ok(canonical, &cfg),
            "{alias} vs {canonical}"
        );
    }
}

#[test]
fn mute_really_removes_the_audio_track() {
    // The original compared a boolean with strings, so `mute` never changed anything.
    assert!(!v("width=640&mute=true", &strict()).audio);
    assert!(v("width=640&mute=false", &strict()).audio);
}

#[test]
fn imdensity_is_the_dpr_parameter() {
    let cfg = strict();
    let h = headers(&[("sec-ch-viewport-width", "600")]);
    let a = ok_with("imdensity=2", &h, &cfg);
    let b = ok_with("dpr=2", &h, &cfg);
    assert_eq!(a, b);
    assert_eq!(a.derivative.as_deref(), Some("tablet"));
}

#[test]
fn canonical_names_beat_aliases_in_any_order() {
    let cfg = strict();
    assert_eq!(v("w=100&width=200", &cfg).width, Some(200));
    assert_eq!(v("width=200&w=100", &cfg).width, Some(200));
    assert!(v("mute=true&audio=true&w=640", &cfg).audio);
    assert!(ok("w=100&width=200", &cfg).warnings.is_empty());
}

// ---------------------------------------------------------------- duplicates, strict, lenient

#[test]
fn a_parameter_repeated_with_another_value_is_refused_in_strict_mode() {
    assert_eq!(refused("width=100&width=200", &strict()), ["width"]);
    assert_eq!(refused("w=100&w=200", &strict()), ["w"]);
    // The same value twice (even spelled differently) is fine.
    assert_eq!(v("width=100&width=0100", &strict()).width, Some(100));
}

#[test]
fn a_repeated_parameter_keeps_its_first_value_with_a_warning_in_lenient_mode() {
    let r = ok("width=100&width=200", &lenient());
    assert_eq!(variant(&r).width, Some(100));
    assert_eq!(warned(&r), ["width"]);
    assert!(r.warnings[0].message.contains("width=100"));
}

#[test]
fn strict_mode_lists_every_bad_parameter_at_once() {
    let names = refused("foo=1&width=0&fit=banana&height=360&duration=0", &strict());
    assert_eq!(names, ["foo", "width", "fit", "duration"]);
}

#[test]
fn unknown_and_invalid_parameters_are_refused_with_a_reason() {
    let err = resolve("foo=1&width=0", &HeaderMap::new(), &strict()).unwrap_err();
    assert_eq!(err.0[0], ParamIssue::new("foo", "1", "unknown parameter"));
    assert_eq!(err.0[1].param, "width");
    assert!(err.0[1].message.contains("10"), "{}", err.0[1].message);
    for bad in [
        "width=8193",
        "width=-5",
        "height=abc",
        "mode=gif",
        "quality=best",
        "compression=max",
        "audio=yes",
        "fps=0",
        "bitrate=1G",
        "time=soon",
        "preload=all",
        "dpr=0",
        "imwidth=0",
        "derivative=",
    ] {
        let name = bad.split('=').next().unwrap_or_default();
        assert_eq!(refused(bad, &strict()), [name], "{bad}");
    }
}

#[test]
fn lenient_mode_drops_bad_parameters_and_keeps_the_rest() {
    let r = ok("foo=1&width=0&height=360&fit=banana", &lenient());
    assert_eq!(warned(&r), ["foo", "width", "fit"]);
    let got = variant(&r);
    assert_eq!(
        (got.width, got.height, got.fit),
        (None, Some(360), Fit::Contain)
    );
}

#[test]
fn signing_debug_bypass_and_imref_are_tolerated() {
    let r = ok(
        "width=640&sig=abc&exp=123&imref=a=b&nocache=1&debug",
        &strict(),
    );
    assert!(r.bypass && r.debug);
    let r = ok("width=640&bypass", &strict());
    assert!(r.bypass && !r.debug);
    let custom = with(|c| c.params.bypass_params = vec!["fresh".into()]);
    assert!(ok("width=640&fresh=1", &custom).bypass);
    assert_eq!(refused("width=640&nocache=1", &custom), ["nocache"]);
}

#[test]
fn huge_queries_are_refused_in_either_mode() {
    let long = format!("filename={}", "a".repeat(MAX_QUERY_BYTES));
    for cfg in [strict(), lenient()] {
        assert_eq!(refused(&long, &cfg), ["query"]);
        let many = vec!["debug"; MAX_PARAMS + 1].join("&");
        assert_eq!(refused(&many, &cfg), ["query"]);
    }
    let just_enough = vec!["debug"; MAX_PARAMS].join("&");
    assert!(ok(&just_enough, &strict()).debug);
}

#[test]
fn echoed_names_and_values_are_cut_short() {
    let name = "x".repeat(200);
    let err = resolve(&format!("{name}=1"), &HeaderMap::new(), &strict()).unwrap_err();
    assert!(err.0[0].param.len() <= MAX_ECHO + 3);
}

// ---------------------------------------------------------------- filename

#[test]
fn filenames_follow_the_download_name_rules() {
    let cfg = strict();
    let long_ok = "a".repeat(120);
    for good in ["clip", "clip.mp4", "My_Clip-2.webm", long_ok.as_str()] {
        assert_eq!(
            ok(&format!("filename={good}"), &cfg).filename.as_deref(),
            Some(good)
        );
    }
    let too_long = "a".repeat(121);
    for bad in [
        "",
        "../etc",
        "a.b.c",
        ".mp4",
        "clip.",
        "a%20b",
        "clip%22.mp4",
        too_long.as_str(),
    ] {
        assert_eq!(
            refused(&format!("filename={bad}"), &cfg),
            ["filename"],
            "{bad}"
        );
    }
}

#[test]
fn a_filename_alone_serves_the_original_under_that_name() {
    let r = ok("filename=clip.mp4", &strict());
    assert_eq!(r.transform, Transform::Original);
    assert_eq!(r.filename.as_deref(), Some("clip.mp4"));
}

// ---------------------------------------------------------------- derivatives

#[test]
fn a_derivative_applies_all_of_its_values() {
    let r = ok("derivative=thumbnail", &strict());
    assert_eq!(r.derivative.as_deref(), Some("thumbnail"));
    let got = variant(&r);
    assert_eq!(got.mode, Mode::Frame);
    assert_eq!(got.format, Format::Png);
    assert_eq!(got.fit, Fit::Cover);
    assert_eq!(
        (got.width, got.height, got.time_ms),
        (Some(640), Some(360), Some(2_000))
    );
    assert_eq!(ok("derivative=mobile", &strict()).hints.loop_, Some(true));
    assert_eq!(
        v("derivative=desktop", &strict()).duration_ms,
        Some(300_000)
    );
}

#[test]
fn listed_parameters_may_override_a_derivative() {
    let got = v("derivative=desktop&duration=10s&time=1s", &strict());
    assert_eq!(
        (got.duration_ms, got.time_ms, got.width),
        (Some(10_000), Some(1_000), Some(1920))
    );
    let r = ok("derivative=mobile&loop=false&filename=m.mp4", &strict());
    assert_eq!(
        (r.hints.loop_, r.filename.as_deref()),
        (Some(false), Some("m.mp4"))
    );
}

#[test]
fn unlisted_parameters_may_not_override_a_derivative() {
    assert_eq!(
        refused("derivative=mobile&width=300&fit=cover", &strict()),
        ["width", "fit"]
    );
    let r = ok("derivative=mobile&w=300", &lenient());
    assert_eq!(variant(&r).width, Some(854));
    assert_eq!(warned(&r), ["w"]);
    assert!(r.warnings[0].message.contains("mobile"));
}

#[test]
fn a_parameter_asking_for_what_the_derivative_produces_is_no_override() {
    // The typical Akamai URL: imwidth picks `mobile`, which makes MP4 (`h264` is MP4's alias).
    let r = ok("imwidth=800&imformat=h264", &strict());
    assert_eq!(r.derivative.as_deref(), Some("mobile"));
    assert_eq!(variant(&r), &v("derivative=mobile", &strict()));
    assert!(r.warnings.is_empty());
    for same in [
        "derivative=mobile&width=854&height=640&fit=contain",
        "derivative=mobile&mode=video&format=mp4&quality=auto&audio=true&mute=false",
        "impolicy=thumbnail&mode=frame&f=png&obj-fit=crop&start=2s",
        // A frame has no audio track, so asking for none changes nothing.
        "derivative=thumbnail&audio=false",
        "derivative=desktop&quality=auto&compression=auto",
    ] {
        let r = ok(same, &strict());
        assert!(r.warnings.is_empty(), "{same}: {:?}", r.warnings);
    }
}

#[test]
fn a_parameter_that_changes_the_derivative_is_still_an_override() {
    assert_eq!(
        refused("imwidth=800&imformat=webm&w=854&h=480", &strict()),
        ["h", "imformat"]
    );
    assert_eq!(
        refused("derivative=thumbnail&format=jpg", &strict()),
        ["format"]
    );
    // Accept may turn a derivative without a format into WebM: naming MP4 pins it.
    let on = with(|c| c.params.accept_negotiation = true);
    assert_eq!(refused("derivative=mobile&format=mp4", &on), ["format"]);
    assert_eq!(
        refused(
            "derivative=mobile&filename=mobile",
            &with(|c| c.params.derivative_overrides.clear())
        ),
        ["filename"]
    );
}

#[test]
fn when_the_derivative_wins_disallowed_overrides_are_ignored_and_reported() {
    let wins = with(|c| {
        c.params.on_disallowed_override = vr_crds::dataplane::DisallowedOverride::DerivativeWins
    });
    let r = ok("imwidth=800&imformat=webm&width=300&duration=2s", &wins);
    assert_eq!(r.derivative.as_deref(), Some("mobile"));
    let got = variant(&r);
    assert_eq!(
        (got.format, got.width, got.duration_ms),
        (Format::Mp4, Some(854), Some(2_000)),
        "the derivative's format and size, the allowed duration"
    );
    assert_eq!(warned(&r), ["width", "imformat"]);
    assert!(
        r.warnings[1].message.contains("mobile"),
        "{}",
        r.warnings[1].message
    );
    let header = warnings_header(&r.warnings).expect("reported in X-Param-Warnings");
    assert!(header.to_str().unwrap_or("").contains("imformat: ignored"));
    // Other bad parameters are still refused in strict mode.
    assert_eq!(refused("derivative=mobile&width=300&foo=1", &wins), ["foo"]);
    // Without a derivative there is nothing to win: allowArbitrary still decides.
    let only = with(|c| {
        c.params.on_disallowed_override = vr_crds::dataplane::DisallowedOverride::DerivativeWins;
        c.params.allow_arbitrary = false;
    });
    assert_eq!(refused("width=300", &only), ["width"]);
}

#[test]
fn the_override_list_comes_from_the_config() {
    let cfg = with(|c| c.params.derivative_overrides = vec!["width".into()]);
    assert_eq!(v("derivative=mobile&width=300", &cfg).width, Some(300));
    assert_eq!(refused("derivative=mobile&time=5s", &cfg), ["time"]);
}

#[test]
fn an_unknown_derivative_is_refused_by_the_name_used() {
    let err = resolve("derivative=huge", &HeaderMap::new(), &strict()).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].param, "derivative");
    assert!(err.0[0].message.contains("mobile"), "{}", err.0[0].message);
    assert_eq!(refused("impolicy=huge", &strict()), ["impolicy"]);
}

#[test]
fn without_arbitrary_sizes_only_derivatives_may_be_requested() {
    let cfg = with(|c| c.params.allow_arbitrary = false);
    assert_eq!(
        refused("width=300&h=200&mode=frame", &cfg),
        ["width", "h", "mode"]
    );
    assert_eq!(v("derivative=mobile", &cfg).width, Some(854));
    assert_eq!(v("derivative=desktop&time=5s", &cfg).time_ms, Some(5_000));
    assert_eq!(refused("derivative=desktop&width=5", &cfg), ["width"]);
    // Hints and names are not transform parameters.
    assert_eq!(
        ok("loop=true&filename=x", &cfg).transform,
        Transform::Original
    );
}

#[test]
fn without_arbitrary_values_derivative_time_overrides_are_whole_seconds() {
    let cfg = with(|c| c.params.allow_arbitrary = false);
    for ms in 1_001..=1_020 {
        let q = format!("derivative=desktop&time={ms}ms");
        assert_eq!(v(&q, &cfg).time_ms, Some(1_000), "{q}");
    }
    assert_eq!(
        v("derivative=desktop&time=1600ms", &cfg).time_ms,
        Some(2_000)
    );
    let d = v("derivative=desktop&duration=2499ms", &cfg).duration_ms;
    assert_eq!(d, Some(2_000));
    // A duration under half a second is one quantum (never zero).
    assert_eq!(
        v("derivative=desktop&duration=200ms", &cfg).duration_ms,
        Some(1_000)
    );
    // With free-form values allowed, times are exact.
    assert_eq!(
        v("derivative=desktop&time=1001ms", &strict()).time_ms,
        Some(1_001)
    );
}

#[test]
fn without_arbitrary_sizes_lenient_mode_falls_back_to_the_responsive_choice() {
    let cfg = with(|c| {
        c.params.allow_arbitrary = false;
        c.params.validation = ValidationMode::Lenient;
        c.responsive.default_derivative = Some("tablet".into());
    });
    let r = ok("width=300", &cfg);
    assert_eq!(warned(&r), ["width"]);
    assert_eq!(r.derivative.as_deref(), Some("tablet"));
    assert_eq!(variant(&r).width, Some(1280));
}

// ---------------------------------------------------------------- imwidth / imheight

#[test]
fn imwidth_picks_the_first_breakpoint_that_fits() {
    let cfg = strict();
    for (imwidth, want) in [
        (1, "mobile"),
        (400, "mobile"),
        (854, "mobile"),
        (855, "tablet"),
        (1280, "tablet"),
        (1281, "desktop"),
        (50_000, "desktop"),
    ] {
        let r = ok(&format!("imwidth={imwidth}"), &cfg);
        assert_eq!(r.derivative.as_deref(), Some(want), "imwidth={imwidth}");
        assert!(variant(&r).width.is_some_and(|w| w >= 10));
        assert!(r.vary.is_empty());
    }
}

#[test]
fn imwidth_never_yields_a_width_of_one() {
    // The original bucketed to a breakpoint's lower bound, so small viewports got width 1.
    assert_eq!(v("imwidth=1", &strict()).width, Some(854));
}

#[test]
fn imwidth_past_every_breakpoint_takes_the_largest() {
    let cfg = with(|c| {
        c.responsive.breakpoints.pop();
    });
    assert_eq!(
        ok("imwidth=5000", &cfg).derivative.as_deref(),
        Some("tablet")
    );
}

#[test]
fn imheight_stands_for_a_sixteen_by_nine_width() {
    assert_eq!(
        ok("imheight=360", &strict()).derivative.as_deref(),
        Some("mobile")
    );
    assert_eq!(
        ok("imheight=720", &strict()).derivative.as_deref(),
        Some("tablet")
    );
    assert_eq!(
        ok("imheight=720&imwidth=400", &strict())
            .derivative
            .as_deref(),
        Some("mobile")
    );
}

#[test]
fn an_explicit_derivative_beats_imwidth() {
    assert_eq!(
        ok("imwidth=400&impolicy=desktop", &strict())
            .derivative
            .as_deref(),
        Some("desktop")
    );
}

#[test]
fn imwidth_without_breakpoints_is_refused() {
    let cfg = with(|c| c.responsive.breakpoints.clear());
    assert_eq!(refused("imwidth=400", &cfg), ["imwidth"]);
}

#[test]
fn imwidth_presets_restrict_overrides_like_named_derivatives() {
    assert_eq!(refused("imwidth=400&width=300", &strict()), ["width"]);
}

// ---------------------------------------------------------------- responsive choice and Vary

fn responsive_cfg() -> ParamsConfig {
    with(|c| {
        c.responsive.constrained_network_derivative = Some("lowbw".into());
        c.responsive.device_derivatives = Some(DeviceDerivatives {
            mobile: Some("mobile".into()),
            tablet: Some("tablet".into()),
            desktop: Some("desktop".into()),
        });
        c.responsive.default_derivative = Some("thumbnail".into());
    })
}

fn choice(
    query: &str,
    h: &[(&'static str, &str)],
    cfg: &ParamsConfig,
) -> (Option<String>, Vec<&'static str>) {
    let r = ok_with(query, &headers(h), cfg);
    (r.derivative, r.vary)
}

#[test]
fn no_size_no_derivative_and_no_config_serves_the_original() {
    let cfg = with(|c| c.responsive.breakpoints.clear());
    let r = ok("", &cfg);
    assert_eq!(r.transform, Transform::Original);
    assert!(r.vary.is_empty() && r.derivative.is_none());
}

#[test]
fn viewport_width_times_dpr_picks_a_breakpoint() {
    let cfg = strict();
    let vp = |w| ("sec-ch-viewport-width", w);
    assert_eq!(
        choice("", &[vp("400")], &cfg),
        (
            Some("mobile".into()),
            vec!["sec-ch-viewport-width", "sec-ch-dpr"]
        )
    );
    assert_eq!(
        choice("", &[vp("400"), ("sec-ch-dpr", "3")], &cfg),
        (
            Some("tablet".into()),
            vec!["sec-ch-viewport-width", "sec-ch-dpr"]
        )
    );
    // The dpr parameter replaces the header, which is then not read.
    assert_eq!(
        choice("dpr=4", &[vp("400"), ("sec-ch-dpr", "1")], &cfg),
        (Some("desktop".into()), vec!["sec-ch-viewport-width"])
    );
}

#[test]
fn the_width_hint_stands_in_for_the_viewport_width() {
    assert_eq!(
        choice("", &[("width", "1000")], &strict()),
        (
            Some("tablet".into()),
            vec!["sec-ch-viewport-width", "width", "sec-ch-dpr"]
        )
    );
}

#[test]
fn without_any_hint_nothing_is_chosen_and_the_hints_read_are_listed() {
    let r = ok_with("", &HeaderMap::new(), &strict());
    assert_eq!(r.transform, Transform::Original);
    assert_eq!(r.vary, ["sec-ch-viewport-width", "width"]);
}

#[test]
fn query_client_hints_apply_only_when_the_header_is_absent() {
    let cfg = strict();
    assert_eq!(
        choice("im-viewwidth=400", &[], &cfg),
        (
            Some("mobile".into()),
            vec!["sec-ch-viewport-width", "sec-ch-dpr"]
        )
    );
    assert_eq!(
        choice(
            "im-viewwidth=400",
            &[("sec-ch-viewport-width", "1000")],
            &cfg
        )
        .0
        .as_deref(),
        Some("tablet")
    );
    assert_eq!(
        choice("im-viewwidth=400&im-density=3", &[], &cfg)
            .0
            .as_deref(),
        Some("tablet")
    );
    assert_eq!(
        choice(
            "im-viewwidth=400&im-density=3",
            &[("sec-ch-dpr", "1")],
            &cfg
        )
        .0
        .as_deref(),
        Some("mobile")
    );
    // im-viewheight is accepted; viewport height does not steer the choice.
    assert_eq!(choice("im-viewheight=900", &[], &cfg).0, None);
}

#[test]
fn a_constrained_network_picks_its_derivative_first() {
    let cfg = responsive_cfg();
    let big = ("sec-ch-viewport-width", "1920");
    assert_eq!(
        choice("", &[("save-data", "on"), big], &cfg),
        (Some("lowbw".into()), vec!["save-data"])
    );
    assert_eq!(
        choice("", &[("ect", "2g"), big], &cfg),
        (Some("lowbw".into()), vec!["save-data", "ect"])
    );
    assert_eq!(
        choice("", &[("ect", "4g"), ("downlink", "0.5")], &cfg),
        (Some("lowbw".into()), vec!["save-data", "ect", "downlink"])
    );
    assert_eq!(
        choice("", &[("ect", "4g"), ("downlink", "10"), big], &cfg),
        (
            Some("desktop".into()),
            vec![
                "save-data",
                "ect",
                "downlink",
                "sec-ch-viewport-width",
                "sec-ch-dpr"
            ]
        )
    );
}

#[test]
fn device_class_comes_from_the_mobile_hint_then_the_user_agent() {
    let cfg = with(|c| {
        c.responsive.breakpoints.clear();
        c.responsive.device_derivatives = Some(DeviceDerivatives {
            mobile: Some("mobile".into()),
            tablet: Some("tablet".into()),
            desktop: Some("desktop".into()),
        });
    });
    assert_eq!(
        choice("", &[("sec-ch-ua-mobile", "?1")], &cfg),
        (Some("mobile".into()), vec!["sec-ch-ua-mobile"])
    );
    let ipad = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
    assert_eq!(
        choice("", &[("user-agent", ipad)], &cfg),
        (
            Some("tablet".into()),
            vec!["sec-ch-ua-mobile", "user-agent"]
        )
    );
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148";
    assert_eq!(
        choice("", &[("user-agent", iphone)], &cfg).0.as_deref(),
        Some("mobile")
    );
    let desktop = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0";
    assert_eq!(
        choice(
            "",
            &[("sec-ch-ua-mobile", "?0"), ("user-agent", desktop)],
            &cfg
        )
        .0
        .as_deref(),
        Some("desktop")
    );
    // No user agent at all: no class, nothing chosen.
    assert_eq!(
        choice("", &[], &cfg),
        (None, vec!["sec-ch-ua-mobile", "user-agent"])
    );
}

#[test]
fn the_default_derivative_is_the_last_resort() {
    let cfg = with(|c| {
        c.responsive.breakpoints.clear();
        c.responsive.default_derivative = Some("tablet".into());
    });
    let r = ok("loop=true", &cfg);
    assert_eq!(r.derivative.as_deref(), Some("tablet"));
    assert!(r.vary.is_empty());
    assert_eq!(variant(&r).width, Some(1280));
}

#[test]
fn next_to_other_parameters_a_responsive_choice_contributes_only_its_size() {
    let cfg = with(|c| c.responsive.default_derivative = Some("thumbnail".into()));
    let r = ok_with("quality=high", &HeaderMap::new(), &cfg);
    assert_eq!(r.derivative.as_deref(), Some("thumbnail"));
    let got = variant(&r);
    assert_eq!(got.mode, Mode::Video);
    assert_eq!((got.width, got.height), (Some(640), Some(360)));
    assert_eq!(got.fit, Fit::Contain);
    assert_eq!(got.quality, Quality::High);
    let r = ok_with(
        "mode=frame",
        &headers(&[("sec-ch-viewport-width", "400")]),
        &cfg,
    );
    assert_eq!(
        r.hints.loop_, None,
        "hints of a responsive choice are not applied"
    );
    assert_eq!(variant(&r).width, Some(854));
}

#[test]
fn an_explicit_size_reads_no_header() {
    let r = ok_with(
        "width=300",
        &headers(&[("sec-ch-viewport-width", "400")]),
        &responsive_cfg(),
    );
    assert!(r.vary.is_empty());
    assert_eq!(r.derivative, None);
}

// ---------------------------------------------------------------- mode, format, Accept

#[test]
fn m4a_implies_audio_mode() {
    let got = v("format=m4a", &strict());
    assert_eq!(
        (got.mode, got.format, got.width),
        (Mode::Audio, Format::M4a, None)
    );
    assert_eq!(v("f=m4a&mode=audio", &strict()).mode, Mode::Audio);
}

#[test]
fn a_format_that_does_not_suit_the_mode_is_refused() {
    assert_eq!(refused("mode=video&format=m4a", &strict()), ["format"]);
    assert_eq!(refused("mode=frame&f=mp4", &strict()), ["f"]);
    assert_eq!(refused("width=640&format=png", &strict()), ["format"]);
    let r = ok("mode=frame&format=mp4", &lenient());
    assert_eq!(variant(&r).format, Format::Jpg);
    assert_eq!(warned(&r), ["format"]);
}

#[test]
fn audio_mode_cannot_drop_the_audio_track() {
    assert_eq!(refused("format=m4a&mute=true", &strict()), ["mute"]);
}

#[test]
fn overriding_a_derivative_mode_drops_its_unsuitable_format() {
    let cfg = with(|c| c.params.derivative_overrides.push("mode".into()));
    let got = v("derivative=thumbnail&mode=video", &cfg);
    assert_eq!((got.mode, got.format), (Mode::Video, Format::Mp4));
}

#[test]
fn accept_may_choose_webm_only_when_allowed_and_no_format_was_asked() {
    let on = with(|c| c.params.accept_negotiation = true);
    let webm = headers(&[("accept", "video/mp4;q=0.9, video/webm")]);
    let r = ok_with("width=640", &webm, &on);
    assert_eq!(variant(&r).format, Format::Webm);
    assert_eq!(r.vary, ["accept"]);
    let r = ok_with("width=640&format=mp4", &webm, &on);
    assert_eq!((variant(&r).format, r.vary.len()), (Format::Mp4, 0));
    let r = ok_with("width=640", &headers(&[("accept", "video/webm;q=0")]), &on);
    assert_eq!(
        (variant(&r).format, r.vary.clone()),
        (Format::Mp4, vec!["accept"])
    );
    let r = ok_with("width=640&mode=frame", &webm, &on);
    assert!(r.vary.is_empty(), "frames are never negotiated");
    let r = ok_with("width=640", &webm, &strict());
    assert_eq!((variant(&r).format, r.vary.len()), (Format::Mp4, 0));
}

#[test]
fn a_derivative_format_is_an_asked_format() {
    let on = with(|c| {
        c.params.accept_negotiation = true;
        c.derivatives.get_mut("tablet").expect("tablet").format = Some(Format::Mp4);
    });
    let r = ok_with(
        "derivative=tablet",
        &headers(&[("accept", "video/webm")]),
        &on,
    );
    assert_eq!((variant(&r).format, r.vary.len()), (Format::Mp4, 0));
}

#[test]
fn variants_are_normalized() {
    assert_eq!(v("mode=audio&width=640", &strict()).width, None);
    assert_eq!(v("width=640&fit=cover", &strict()).fit, Fit::Contain);
}

// ---------------------------------------------------------------- errors and warnings header

#[test]
fn param_errors_are_400_invalid_parameters_with_the_list() {
    let err = resolve("foo=1&width=0", &HeaderMap::new(), &strict()).unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    assert_eq!(err.code(), "invalid_parameters");
    assert_eq!(err.fault(), Fault::Client);
    let details = err.details().expect("details");
    assert_eq!(details[0]["param"], "foo");
    assert_eq!(details[1]["param"], "width");
    assert_eq!(details[1]["value"], "0");
    let text = err.to_string();
    assert!(
        text.contains("foo: unknown parameter") && text.contains("width:"),
        "{text}"
    );
}

#[test]
fn the_warnings_header_lists_param_and_message() {
    let r = ok("foo=1&width=0&height=360", &lenient());
    let h = warnings_header(&r.warnings).expect("header");
    let s = h.to_str().expect("ascii");
    assert!(
        s.starts_with("foo: unknown parameter; width: expected"),
        "{s}"
    );
    assert_eq!(warnings_header(&[]), None);
}

#[test]
fn the_warnings_header_is_ascii_and_bounded() {
    let issues: Vec<ParamIssue> = (0..200)
        .map(|i| {
            ParamIssue::new(
                &format!("p\u{e9};:{i}\r\n"),
                "",
                "bad \u{2013} value;\u{7f}",
            )
        })
        .collect();
    let h = warnings_header(&issues).expect("header");
    let s = h.to_str().expect("visible ascii");
    assert!(s.len() <= MAX_WARNINGS_HEADER, "{}", s.len());
    assert!(s.ends_with("..."));
    assert!(s.starts_with("p???0??: bad ? value??; "), "{s}");
}

#[test]
fn one_very_long_warning_is_cut_rather_than_dropped() {
    let issue = ParamIssue::new("derivative", "x", "y".repeat(5_000));
    let h = warnings_header(&[issue]).expect("header");
    let s = h.to_str().expect("visible ascii");
    assert_eq!(s.len(), MAX_WARNINGS_HEADER);
    assert!(s.starts_with("derivative: yyy") && s.ends_with("..."));
}

// ---------------------------------------------------------------- property tests

/// A valid parameter set, to be written with canonical names or with aliases.
#[derive(Debug, Clone)]
struct Params {
    width: Option<u32>,
    height: Option<u32>,
    fit: Option<Fit>,
    mode: Option<Mode>,
    format: Option<Format>,
    quality: Option<Quality>,
    time_ms: Option<u64>,
    duration_ms: Option<u64>,
    audio: Option<bool>,
    dpr: Option<u32>,
}

fn params_strategy(dims: Vec<u32>, times: Vec<u64>) -> impl Strategy<Value = Params> {
    let dim = proptest::option::of(proptest::sample::select(dims));
    let time = proptest::option::of(proptest::sample::select(times.clone()));
    let dur =
        proptest::option::of(proptest::sample::select(times).prop_filter("positive", |t| *t > 0));
    let mode_format = proptest::option::of(proptest::sample::select(Mode::ALL.to_vec()))
        .prop_flat_map(|mode| {
            let formats: Vec<Format> = match mode {
                Some(m) => Format::ALL
                    .iter()
                    .copied()
                    .filter(|f| m.accepts(*f))
                    .collect(),
                None => vec![Format::Mp4, Format::Webm],
            };
            (
                Just(mode),
                proptest::option::of(proptest::sample::select(formats)),
            )
        });
    (
        (dim.clone(), dim),
        proptest::option::of(proptest::sample::select(Fit::ALL.to_vec())),
        mode_format,
        proptest::option::of(proptest::sample::select(Quality::ALL.to_vec())),
        (time, dur),
        proptest::option::of(any::<bool>()),
        proptest::option::of(1u32..=3),
    )
        .prop_map(
            |(
                (width, height),
                fit,
                (mode, format),
                quality,
                (time_ms, duration_ms),
                audio,
                dpr,
            )| {
                let audio = if mode == Some(Mode::Audio) {
                    audio.map(|_| true)
                } else {
                    audio
                };
                Params {
                    width,
                    height,
                    fit,
                    mode,
                    format,
                    quality,
                    time_ms,
                    duration_ms,
                    audio,
                    dpr,
                }
            },
        )
}

impl Params {
    fn canonical_query(&self) -> String {
        let mut q = Vec::new();
        if let Some(w) = self.width {
            q.push(format!("width={w}"));
        }
        if let Some(h) = self.height {
            q.push(format!("height={h}"));
        }
        if let Some(f) = self.fit {
            q.push(format!("fit={f}"));
        }
        if let Some(m) = self.mode {
            q.push(format!("mode={m}"));
        }
        if let Some(f) = self.format {
            q.push(format!("format={f}"));
        }
        if let Some(x) = self.quality {
            q.push(format!("quality={x}"));
        }
        if let Some(t) = self.time_ms {
            q.push(format!("time={}", format_time_ms(t)));
        }
        if let Some(d) = self.duration_ms {
            q.push(format!("duration={}", format_time_ms(d)));
        }
        if let Some(a) = self.audio {
            q.push(format!("audio={a}"));
        }
        if let Some(d) = self.dpr {
            q.push(format!("dpr={d}"));
        }
        q.join("&")
    }

    /// The same set with every parameter that has an alias written with it, in reverse order.
    fn alias_query(&self) -> String {
        let mut q = Vec::new();
        if let Some(w) = self.width {
            q.push(format!("w={w}"));
        }
        if let Some(h) = self.height {
            q.push(format!("h=%3{}", &h.to_string()[..1]) + &h.to_string()[1..]);
        }
        if let Some(f) = self.fit {
            let spelled = match f {
                Fit::Cover => "crop",
                Fit::Contain => "fill",
                other => other.as_str(),
            };
            q.push(format!("obj-fit={spelled}"));
        }
        if let Some(m) = self.mode {
            q.push(format!("mode={m}"));
        }
        if let Some(f) = self.format {
            q.push(match f {
                Format::Mp4 => "imformat=h264".to_string(),
                other => format!("f={other}"),
            });
        }
        if let Some(x) = self.quality {
            q.push(format!("q={x}"));
        }
        if let Some(t) = self.time_ms {
            q.push(format!("start={t}ms"));
        }
        if let Some(d) = self.duration_ms {
            q.push(format!("dur={d}ms"));
        }
        if let Some(a) = self.audio {
            q.push(format!("mute={}", !a));
        }
        if let Some(d) = self.dpr {
            q.push(format!("imdensity={d}"));
        }
        q.reverse();
        q.join("&")
    }
}

fn transform_of(query: &str, cfg: &ParamsConfig) -> Result<Transform, TestCaseError> {
    resolve(query, &HeaderMap::new(), cfg)
        .map(|r| r.transform)
        .map_err(|e| TestCaseError::fail(format!("{query:?} was refused: {e}")))
}

fn canonical_of(t: &Transform) -> String {
    match t {
        Transform::Original => "original".into(),
        Transform::Variant(v) => v.canonical(),
    }
}

proptest! {
    #[test]
    fn canonical_names_and_aliases_resolve_to_the_same_variant(
        p in params_strategy((10..=8192).collect(), vec![0, 1, 250, 1_500, 90_000, 3_723_500])
    ) {
        let cfg = strict();
        let a = transform_of(&p.canonical_query(), &cfg)?;
        let b = transform_of(&p.alias_query(), &cfg)?;
        prop_assert_eq!(canonical_of(&a), canonical_of(&b));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn variants_differ_exactly_when_their_canonical_strings_differ(
        a in params_strategy(vec![320, 640], vec![0, 1_000]),
        b in params_strategy(vec![320, 640], vec![0, 1_000]),
    ) {
        let cfg = strict();
        let ta = transform_of(&a.canonical_query(), &cfg)?;
        let tb = transform_of(&b.canonical_query(), &cfg)?;
        prop_assert_eq!(ta == tb, canonical_of(&ta) == canonical_of(&tb));
    }

    #[test]
    fn resolve_never_panics_on_arbitrary_queries(
        q in ".{0,300}",
        vw in proptest::option::of("[ -~]{0,12}"),
        lenient_mode in any::<bool>(),
    ) {
        let cfg = if lenient_mode { lenient() } else { responsive_cfg() };
        let mut h = HeaderMap::new();
        if let Some(value) = vw.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert("sec-ch-viewport-width", value.clone());
            h.insert("sec-ch-dpr", value.clone());
            h.insert("downlink", value.clone());
            h.insert("user-agent", value);
        }
        let _ = resolve(&q, &h, &cfg);
    }

    #[test]
    fn resolve_never_panics_on_queries_made_of_known_names(
        pieces in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "width", "w", "height", "imwidth", "imheight", "im-viewwidth", "im-density",
                    "dpr", "mode", "format", "f", "imformat", "mute", "audio", "derivative",
                    "impolicy", "time", "duration", "fps", "bitrate", "imageCount", "filename",
                    "fit", "obj-fit", "sig", "debug", "nocache",
                ]),
                "[a-z0-9.%+=-]{0,10}",
            ),
            0..20,
        ),
        lenient_mode in any::<bool>(),
    ) {
        let cfg = if lenient_mode { lenient() } else { responsive_cfg() };
        let q = pieces.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&");
        if let Ok(r) = resolve(&q, &HeaderMap::new(), &cfg) {
            if let Transform::Variant(v) = &r.transform {
                prop_assert_eq!(v, &v.clone().normalized());
                prop_assert!(v.mode.accepts(v.format));
            }
        }
    }
}
