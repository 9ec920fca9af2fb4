//! Output geometry: the scale, crop and pad a fit asks for, in even pixels, within limits.

use vr_crds::media::Fit;

/// How a source picture becomes the output picture: scale, then crop (cover) or pad (pad).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::transcode) struct Geometry {
    /// Size after scaling.
    pub scale: (u32, u32),
    /// Centre crop to this size (cover).
    pub crop: Option<(u32, u32)>,
    /// Pad to (w, h) with the picture at (x, y) (pad).
    pub pad: Option<(u32, u32, u32, u32)>,
    /// Final size.
    pub out: (u32, u32),
}

impl Geometry {
    /// Output geometry for a `src` picture, a requested box and a fit. With only one side
    /// given, the other keeps the aspect ratio; with none, the source size is kept. `even`
    /// rounds every size and offset to even numbers (yuv420p video needs them).
    pub(in crate::transcode) fn fit(
        src: (u32, u32),
        width: Option<u32>,
        height: Option<u32>,
        fit: Fit,
        even: bool,
    ) -> Geometry {
        let (sw, sh) = (u64::from(src.0.max(1)), u64::from(src.1.max(1)));
        let floor = |x: u64| -> u32 {
            let x = u32::try_from(x).unwrap_or(u32::MAX);
            if even {
                (x - x % 2).max(2)
            } else {
                x.max(1)
            }
        };
        let round = |x: u64, cap: u32| -> u32 {
            let x = u32::try_from(x).unwrap_or(u32::MAX);
            if even {
                (x.saturating_add(1) / 2 * 2).clamp(2, cap.max(2))
            } else {
                x.clamp(1, cap.max(1))
            }
        };
        let ceil_even = |x: u64| -> u32 {
            let x = u32::try_from(x).unwrap_or(u32::MAX);
            if even {
                x.saturating_add(x % 2).max(2)
            } else {
                x.max(1)
            }
        };
        let never_enlarge = fit == Fit::ScaleDown;
        let plain = |w: u32, h: u32| Geometry {
            scale: (w, h),
            crop: None,
            pad: None,
            out: (w, h),
        };
        match (width, height) {
            (None, None) => plain(floor(sw), floor(sh)),
            (Some(bw), None) => {
                let bw = if never_enlarge {
                    u64::from(bw).min(sw)
                } else {
                    u64::from(bw)
                };
                let w = floor(bw);
                let h = round(div_round(sh * u64::from(w), sw), u32::MAX);
                plain(w, h)
            }
            (None, Some(bh)) => {
                let bh = if never_enlarge {
                    u64::from(bh).min(sh)
                } else {
                    u64::from(bh)
                };
                let h = floor(bh);
                let w = round(div_round(sw * u64::from(h), sh), u32::MAX);
                plain(w, h)
            }
            (Some(bw), Some(bh)) => {
                let (bw, bh) = (floor(u64::from(bw)), floor(u64::from(bh)));
                let (bw64, bh64) = (u64::from(bw), u64::from(bh));
                let width_limits = bw64 * sh <= bh64 * sw;
                let contain = || {
                    if width_limits {
                        (bw, round(div_round(sh * bw64, sw), bh))
                    } else {
                        (round(div_round(sw * bh64, sh), bw), bh)
                    }
                };
                match fit {
                    Fit::Contain => {
                        let (w, h) = contain();
                        plain(w, h)
                    }
                    Fit::ScaleDown => {
                        if sw <= bw64 && sh <= bh64 {
                            plain(floor(sw), floor(sh))
                        } else {
                            let (w, h) = contain();
                            plain(w, h)
                        }
                    }
                    Fit::Cover => {
                        // Width limits contain ⇔ height limits cover: scale by the larger factor.
                        let scale = if width_limits {
                            (ceil_even(div_ceil(sw * bh64, sh)).max(bw), bh)
                        } else {
                            (bw, ceil_even(div_ceil(sh * bw64, sw)).max(bh))
                        };
                        Geometry {
                            scale,
                            crop: Some((bw, bh)),
                            pad: None,
                            out: (bw, bh),
                        }
                    }
                    Fit::Pad => {
                        let (w, h) = contain();
                        let (mut x, mut y) = ((bw - w) / 2, (bh - h) / 2);
                        if even {
                            x -= x % 2;
                            y -= y % 2;
                        }
                        Geometry {
                            scale: (w, h),
                            crop: None,
                            pad: Some((bw, bh, x, y)),
                            out: (bw, bh),
                        }
                    }
                }
            }
        }
    }

    /// The filters realising this geometry (`scale`, then `crop` or `pad`, then `setsar=1`).
    pub(super) fn filters(&self) -> Vec<String> {
        let mut f = vec![format!("scale={}:{}", self.scale.0, self.scale.1)];
        if let Some((w, h)) = self.crop {
            f.push(format!("crop={w}:{h}"));
        }
        if let Some((w, h, x, y)) = self.pad {
            f.push(format!("pad={w}:{h}:{x}:{y}:color=black"));
        }
        f.push("setsar=1".into());
        f
    }
}

fn div_round(n: u64, d: u64) -> u64 {
    (n + d / 2) / d.max(1)
}

fn div_ceil(n: u64, d: u64) -> u64 {
    n.div_ceil(d.max(1))
}
