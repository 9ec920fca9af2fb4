use super::*;
use proptest::prelude::*;
use vr_crds::media::Fit;

fn source(w: u32, h: u32) -> MediaInfo {
    MediaInfo {
        duration_ms: Some(10_000),
        width: Some(w),
        height: Some(h),
        video_codec: Some("h264".into()),
        audio_codec: Some("aac".into()),
        streams: 2,
        format_name: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        fps_milli: Some(30_000),
        ..MediaInfo::default()
    }
}

fn hd() -> MediaInfo {
    source(1920, 1080)
}

fn video(w: Option<u32>, h: Option<u32>, fit: Fit) -> Variant {
    let mut v = Variant::new(Mode::Video);
    v.width = w;
    v.height = h;
    v.fit = fit;
    v.normalized()
}

/// The value following `flag` in the output arguments.
fn after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

fn has_pair(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn mp4_video_is_h264_aac_fragmented_with_explicit_maps() {
    let p = plan(&video(Some(640), Some(360), Fit::Contain), &hd(), 2).unwrap();
    let o = p.output_args();
    assert_eq!(p.content_type(), "video/mp4");
    assert!(p.streamable());
    assert!(has_pair(o, "-map", "0:v:0"));
    assert!(has_pair(o, "-map", "0:a:0?"));
    assert!(o.iter().any(|a| a == "-sn") && o.iter().any(|a| a == "-dn"));
    assert!(has_pair(o, "-c:v", "libx264"));
    assert!(has_pair(o, "-c:a", "aac"));
    assert!(has_pair(o, "-preset", "veryfast"));
    assert!(has_pair(o, "-crf", "23"));
    assert!(has_pair(o, "-g", "60"));
    assert!(has_pair(o, "-threads", "2"));
    assert!(has_pair(o, "-f", "mp4"));
    assert!(has_pair(
        o,
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof"
    ));
    assert_eq!(
        after(o, "-vf"),
        Some("scale=640:360,setsar=1,format=yuv420p")
    );
    assert_eq!(p.output_size(), Some((640, 360)));
    assert!(has_pair(p.input_args(), "-threads", "2"));
}

#[test]
fn webm_video_is_vp9_opus() {
    let mut v = video(Some(640), None, Fit::Contain);
    v.format = Format::Webm;
    let p = plan(&v, &hd(), 1).unwrap();
    let o = p.output_args();
    assert_eq!(p.content_type(), "video/webm");
    assert!(has_pair(o, "-c:v", "libvpx-vp9"));
    assert!(has_pair(o, "-c:a", "libopus"));
    assert!(has_pair(o, "-b:v", "0"));
    assert!(has_pair(o, "-f", "webm"));
    assert!(!o.iter().any(|a| a == "-movflags"));
}

#[test]
fn each_fit_gives_its_geometry() {
    let src = (1920, 1080);
    let g = Geometry::fit(src, Some(500), Some(500), Fit::Contain, true);
    assert_eq!(
        (g.scale, g.crop, g.pad, g.out),
        ((500, 282), None, None, (500, 282))
    );
    let g = Geometry::fit(src, Some(500), Some(500), Fit::Cover, true);
    assert_eq!(
        (g.scale, g.crop, g.out),
        ((890, 500), Some((500, 500)), (500, 500))
    );
    let g = Geometry::fit(src, Some(500), Some(500), Fit::Pad, true);
    assert_eq!(
        (g.scale, g.pad, g.out),
        ((500, 282), Some((500, 500, 0, 108)), (500, 500))
    );
    // scale-down never enlarges; contain does.
    let g = Geometry::fit((320, 180), Some(640), Some(640), Fit::ScaleDown, true);
    assert_eq!(g.out, (320, 180));
    let g = Geometry::fit((320, 180), Some(640), Some(640), Fit::Contain, true);
    assert_eq!(g.out, (640, 360));
    let g = Geometry::fit((320, 180), Some(640), None, Fit::ScaleDown, true);
    assert_eq!(g.out, (320, 180));
}

#[test]
fn one_side_keeps_the_aspect_ratio_and_video_sizes_are_even() {
    let g = Geometry::fit((1920, 1080), Some(641), None, Fit::Contain, true);
    assert_eq!(g.out, (640, 360));
    let g = Geometry::fit((1920, 1080), None, Some(101), Fit::Contain, true);
    assert_eq!(g.out, (178, 100));
    // Images may be odd.
    let g = Geometry::fit((1920, 1080), None, Some(101), Fit::Contain, false);
    assert_eq!(g.out, (180, 101));
    let g = Geometry::fit((1921, 1081), None, None, Fit::Contain, true);
    assert_eq!(g.out, (1920, 1080));
}

#[test]
fn cover_and_pad_filters_are_numeric() {
    let p = plan(&video(Some(500), Some(500), Fit::Cover), &hd(), 2).unwrap();
    assert_eq!(
        after(p.output_args(), "-vf"),
        Some("scale=890:500,crop=500:500,setsar=1,format=yuv420p")
    );
    let p = plan(&video(Some(500), Some(500), Fit::Pad), &hd(), 2).unwrap();
    assert_eq!(
        after(p.output_args(), "-vf"),
        Some("scale=500:282,pad=500:500:0:108:color=black,setsar=1,format=yuv420p")
    );
}

#[test]
fn rotated_sources_are_fitted_by_their_displayed_size() {
    let mut info = hd();
    info.rotation = 90;
    let p = plan(&video(Some(360), None, Fit::Contain), &info, 2).unwrap();
    assert_eq!(p.output_size(), Some((360, 640)));
}

#[test]
fn time_at_or_past_the_end_names_time() {
    for mode in [Mode::Video, Mode::Frame, Mode::Spritesheet, Mode::Audio] {
        let mut v = Variant::new(mode);
        v.time_ms = Some(10_000);
        let err = plan(&v.normalized(), &hd(), 2).unwrap_err();
        assert!(
            matches!(
                err,
                TranscodeError::TimePastEnd {
                    time_ms: 10_000,
                    duration_ms: 10_000
                }
            ),
            "{mode}: {err}"
        );
        assert!(err.to_string().starts_with("time"));
        assert_eq!(
            crate::error::Classify::status(&err),
            http::StatusCode::BAD_REQUEST
        );
    }
    let mut v = Variant::new(Mode::Frame);
    v.time_ms = Some(9_999);
    assert!(plan(&v.normalized(), &hd(), 2).is_ok());
}

#[test]
fn clip_seeks_before_the_input_and_limits_the_output() {
    let mut v = Variant::new(Mode::Video);
    v.time_ms = Some(2_500);
    v.duration_ms = Some(3_000);
    let p = plan(&v.normalized(), &hd(), 2).unwrap();
    assert!(has_pair(p.input_args(), "-ss", "2.500"));
    assert!(has_pair(p.output_args(), "-t", "3.000"));
    assert!(!p.output_args().iter().any(|a| a == "-ss"));
}

#[test]
fn audio_false_drops_audio_and_fps_bitrate_quality_compression_apply() {
    let mut v = video(Some(640), None, Fit::Contain);
    v.audio = false;
    v.fps_milli = Some(29_970);
    v.bitrate_kbps = Some(800);
    v.quality = Quality::High;
    v.compression = Compression::High;
    let p = plan(&v, &hd(), 2).unwrap();
    let o = p.output_args();
    assert!(o.iter().any(|a| a == "-an"));
    assert!(!o.iter().any(|a| a.starts_with("0:a")));
    assert!(after(o, "-vf").unwrap().starts_with("fps=fps=2997/100,"));
    assert!(has_pair(o, "-maxrate", "800k") && has_pair(o, "-bufsize", "1600k"));
    assert!(has_pair(o, "-crf", "19") && has_pair(o, "-preset", "medium"));
    assert!(has_pair(o, "-g", "60"));
}

#[test]
fn a_source_without_audio_gets_no_audio_encoder() {
    let mut info = hd();
    info.audio_codec = None;
    let p = plan(&video(Some(640), None, Fit::Contain), &info, 2).unwrap();
    assert!(p.output_args().iter().any(|a| a == "-an"));
}

#[test]
fn modes_refuse_sources_without_the_stream_they_need() {
    let mut no_video = hd();
    no_video.video_codec = None;
    no_video.width = None;
    no_video.height = None;
    for mode in [Mode::Video, Mode::Frame, Mode::Spritesheet] {
        let err = plan(&Variant::new(mode).normalized(), &no_video, 2).unwrap_err();
        assert!(
            matches!(err, TranscodeError::NoVideoStream { .. }),
            "{mode}"
        );
    }
    assert!(plan(&Variant::new(Mode::Audio).normalized(), &no_video, 2).is_ok());
    let mut no_audio = hd();
    no_audio.audio_codec = None;
    let err = plan(&Variant::new(Mode::Audio).normalized(), &no_audio, 2).unwrap_err();
    assert!(matches!(err, TranscodeError::NoAudioStream));
}

#[test]
fn frame_is_one_image_of_the_asked_format() {
    let mut v = Variant::new(Mode::Frame);
    v.time_ms = Some(3_000);
    v.width = Some(320);
    for (format, codec, ct) in [
        (Format::Jpg, "mjpeg", "image/jpeg"),
        (Format::Png, "png", "image/png"),
        (Format::Webp, "libwebp", "image/webp"),
    ] {
        v.format = format;
        let p = plan(&v.clone().normalized(), &hd(), 2).unwrap();
        assert_eq!(p.content_type(), ct);
        assert!(!p.streamable());
        assert!(has_pair(p.input_args(), "-ss", "3.000"));
        assert!(has_pair(p.output_args(), "-frames:v", "1"));
        assert!(has_pair(p.output_args(), "-c:v", codec));
        assert!(has_pair(p.output_args(), "-f", "image2pipe"));
        assert_eq!(p.output_size(), Some((320, 180)));
    }
}

#[test]
fn spritesheet_is_a_grid_of_tiles_of_the_asked_size() {
    let mut v = Variant::new(Mode::Spritesheet);
    v.width = Some(160);
    v.height = Some(90);
    v.image_count = Some(20);
    let p = plan(&v.normalized(), &hd(), 2).unwrap();
    let vf = after(p.output_args(), "-vf").unwrap();
    assert!(vf.starts_with("fps=fps=2/1,scale=160:90"), "{vf}");
    assert!(vf.contains("tile=layout=5x4"), "{vf}");
    assert!(has_pair(p.input_args(), "-t", "10.000"));
    assert_eq!(p.output_size(), Some((800, 360)));
    // Dense sampling (0.5 s apart) decodes every frame.
    assert!(!p.input_args().iter().any(|a| a == "nokey"));

    let mut long = hd();
    long.duration_ms = Some(600_000);
    let mut v = Variant::new(Mode::Spritesheet);
    v.image_count = Some(10);
    let p = plan(&v.normalized(), &long, 2).unwrap();
    assert!(has_pair(p.input_args(), "-skip_frame", "nokey"));
    // No size: tiles are DEFAULT_TILE_WIDTH wide.
    assert_eq!(p.output_size(), Some((4 * 160, 3 * 90)));
}

#[test]
fn oversized_spritesheets_name_image_count() {
    let mut v = Variant::new(Mode::Spritesheet);
    v.width = Some(4000);
    v.image_count = Some(100);
    let err = plan(&v.normalized(), &hd(), 2).unwrap_err();
    assert!(matches!(
        err,
        TranscodeError::BadParameter {
            param: "imageCount",
            ..
        }
    ));
}

#[test]
fn audio_mode_is_fragmented_aac_without_video() {
    let p = plan(&Variant::new(Mode::Audio).normalized(), &hd(), 2).unwrap();
    let o = p.output_args();
    assert_eq!(p.content_type(), "audio/mp4");
    assert!(p.streamable());
    assert!(has_pair(o, "-map", "0:a:0"));
    assert!(o.iter().any(|a| a == "-vn"));
    assert!(!o.iter().any(|a| a == "0:v:0"));
    assert!(has_pair(o, "-c:a", "aac"));
    assert!(has_pair(o, "-frag_duration", "2000000"));
    assert_eq!(p.output_size(), None);
}

#[test]
fn full_argv_pins_whitelists_before_the_input_and_ends_with_the_pipe() {
    let p = plan(&video(Some(640), None, Fit::Contain), &hd(), 2).unwrap();
    let a = p.ffmpeg_args("file:/tmp/src.mp4", 1_000_000);
    let input = a.iter().position(|x| x == "file:/tmp/src.mp4").unwrap();
    assert_eq!(a[input - 1], "-i");
    for flag in [
        "-nostdin",
        "-xerror",
        "-protocol_whitelist",
        "-format_whitelist",
        "-codec_whitelist",
        "-probesize",
    ] {
        let i = a.iter().position(|x| x == flag).unwrap();
        assert!(i < input, "{flag} must be an input option");
    }
    assert!(has_pair(&a, "-protocol_whitelist", "file,pipe"));
    assert_eq!(a.last().map(String::as_str), Some("pipe:1"));
}

fn any_variant() -> impl Strategy<Value = Variant> {
    (
        prop::sample::select(Mode::ALL.to_vec()),
        prop::option::of(10u32..=8192),
        prop::option::of(10u32..=8192),
        prop::sample::select(Fit::ALL.to_vec()),
        prop::sample::select(Format::ALL.to_vec()),
        prop::sample::select(Quality::ALL.to_vec()),
        prop::sample::select(Compression::ALL.to_vec()),
        (
            prop::option::of(0u64..9_000),
            prop::option::of(1u64..20_000),
            any::<bool>(),
            prop::option::of(100u32..=120_000),
            prop::option::of(16u32..=100_000),
            prop::option::of(1u32..=100),
        ),
    )
        .prop_map(
            |(mode, w, h, fit, format, q, c, (t, d, audio, fps, br, n))| {
                let mut v = Variant::new(mode);
                v.width = w;
                v.height = h;
                v.fit = fit;
                v.format = format;
                v.quality = q;
                v.compression = c;
                v.time_ms = t;
                v.duration_ms = d;
                v.audio = audio;
                v.fps_milli = fps;
                v.bitrate_kbps = br;
                v.image_count = n;
                v.normalized()
            },
        )
}

proptest! {
    #[test]
    fn every_argument_is_built_from_numbers_and_fixed_words(
        v in any_variant(), sw in 16u32..4000, sh in 16u32..4000,
    ) {
        if let Ok(p) = plan(&v, &source(sw, sh), 2) {
            for a in p.input_args().iter().chain(p.output_args()) {
                prop_assert!(
                    !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-:.,=+/()*?".contains(&b)),
                    "unexpected argument {:?}", a
                );
                prop_assert!(!a.contains("file") && !a.contains("movie") && !a.contains("://"));
            }
        }
    }

    #[test]
    fn video_sizes_are_even_and_within_the_box(
        sw in 2u32..8000, sh in 2u32..8000,
        bw in prop::option::of(10u32..=8192), bh in prop::option::of(10u32..=8192),
        fit in prop::sample::select(Fit::ALL.to_vec()),
    ) {
        let g = Geometry::fit((sw, sh), bw, bh, fit, true);
        for d in [g.scale.0, g.scale.1, g.out.0, g.out.1] {
            prop_assert!(d >= 2 && d % 2 == 0, "{:?}", g);
        }
        if let (Some(bw), Some(bh)) = (bw, bh) {
            prop_assert!(g.out.0 <= bw && g.out.1 <= bh, "{:?}", g);
            if matches!(fit, Fit::Cover | Fit::Pad) {
                prop_assert_eq!(g.out, (bw - bw % 2, bh - bh % 2));
            }
            if let Some((_, _, x, y)) = g.pad {
                prop_assert!(x + g.scale.0 <= g.out.0 && y + g.scale.1 <= g.out.1);
            }
            if g.crop.is_some() {
                prop_assert!(g.scale.0 >= g.out.0 && g.scale.1 >= g.out.1, "{:?}", g);
            }
        }
    }
}

const LIMITS: OutputLimits = OutputLimits {
    max_output_pixels: 3840 * 2160,
    max_spritesheet_pixels: 4096 * 4096,
    max_output_frames: 108_000,
};

/// The parameter an output refusal names, or `None` when the plan is within [`LIMITS`].
fn refused(v: &Variant, info: &MediaInfo) -> Option<&'static str> {
    match plan(v, info, 2).unwrap().check(v, &LIMITS) {
        Ok(()) => None,
        Err(TranscodeError::OutputTooLarge { param, reason }) => {
            assert!(reason.contains("limits."), "{reason}");
            Some(param)
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn the_derived_side_counts_towards_the_output_limit() {
    // A 2×2 source at width=8192 is an 8192×8192 output (the attack of issue 15, row 1).
    assert_eq!(
        refused(&video(Some(8192), None, Fit::Contain), &source(2, 2)),
        Some("width")
    );
    assert_eq!(
        refused(&video(None, Some(8192), Fit::Contain), &source(2, 2)),
        Some("height")
    );
    // 16×48 to a PNG frame 8192 wide: 8192×24576.
    let mut v = Variant::new(Mode::Frame);
    v.width = Some(8192);
    v.format = Format::Png;
    assert_eq!(refused(&v.normalized(), &source(16, 48)), Some("width"));
    // No size at all keeps the source's: a source over the output limit needs a width.
    assert_eq!(
        refused(&video(None, None, Fit::Contain), &source(7680, 4320)),
        Some("width")
    );
}

#[test]
fn a_large_box_is_refused_and_a_4k_box_is_not() {
    assert_eq!(
        refused(
            &video(Some(8192), Some(8192), Fit::Cover),
            &source(640, 360)
        ),
        Some("width")
    );
    assert_eq!(
        refused(&video(Some(8192), Some(8192), Fit::Pad), &source(640, 360)),
        Some("width")
    );
    for fit in Fit::ALL.iter().copied() {
        assert_eq!(
            refused(&video(Some(3840), Some(2160), fit), &hd()),
            None,
            "{fit:?}"
        );
        assert_eq!(
            refused(&video(Some(1280), None, fit), &hd()),
            None,
            "{fit:?}"
        );
    }
}

#[test]
fn a_cover_scale_far_past_the_box_names_fit() {
    // A 4000×10 strip covering 3840×2160 would be scaled to 864000×2160 before the crop.
    let v = video(Some(3840), Some(2160), Fit::Cover);
    assert_eq!(refused(&v, &source(4000, 10)), Some("fit"));
    // The same box with contain is small.
    assert_eq!(
        refused(
            &video(Some(3840), Some(2160), Fit::Contain),
            &source(4000, 10)
        ),
        None
    );
}

#[test]
fn spritesheets_are_bounded_as_a_whole() {
    let mut v = Variant::new(Mode::Spritesheet);
    v.width = Some(8192);
    v.height = Some(8192);
    v.fit = Fit::Cover;
    v.image_count = Some(4);
    assert_eq!(
        refused(&v.normalized(), &source(640, 360)),
        Some("imageCount")
    );
    let mut v = Variant::new(Mode::Spritesheet);
    v.width = Some(160);
    v.height = Some(90);
    v.image_count = Some(100);
    assert_eq!(refused(&v.normalized(), &hd()), None);
}

#[test]
fn long_high_rate_videos_name_duration() {
    let mut long = hd();
    long.duration_ms = Some(3_600_000);
    let mut v = Variant::new(Mode::Video);
    v.width = Some(320);
    v.fps_milli = Some(60_000);
    // One hour at 60 fps = 216 000 frames.
    assert_eq!(refused(&v.clone().normalized(), &long), Some("duration"));
    v.duration_ms = Some(600_000);
    assert_eq!(refused(&v.normalized(), &long), None);
    // Images and audio have no frame estimate.
    assert_eq!(
        refused(&Variant::new(Mode::Audio).normalized(), &long),
        None
    );
}

proptest! {
    #[test]
    fn a_checked_plan_never_exceeds_the_limits(
        v in any_variant(), sw in 2u32..8000, sh in 2u32..8000,
    ) {
        if let Ok(p) = plan(&v, &source(sw, sh), 2) {
            if p.check(&v, &LIMITS).is_ok() {
                let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
                if let Some(out) = p.output_size() {
                    let max = if v.mode == Mode::Spritesheet {
                        LIMITS.max_spritesheet_pixels
                    } else {
                        LIMITS.max_output_pixels
                    };
                    prop_assert!(px(out) <= max, "{:?}", out);
                }
                if let Some(s) = p.scaled_size {
                    prop_assert!(px(s) <= 2 * LIMITS.max_output_pixels, "{:?}", s);
                }
                prop_assert!(p.frames().unwrap_or(0) <= LIMITS.max_output_frames);
            }
        }
    }
}
