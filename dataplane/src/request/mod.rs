//! What a request asks for: the URL API ([`params`]: canonical names, aliases, derivatives,
//! client hints) resolved into a [`variant::Variant`] for the transcoder.

pub mod params;
pub mod variant;
