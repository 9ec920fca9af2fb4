//! Origin rules: request-path decoding, matcher captures and `${name}` template expansion.
//!
//! **Where percent-decoding happens.** The request path reaches [`decode_path`] exactly as it
//! was received (still percent-encoded, without the query) and is decoded here, once. The
//! matcher and every template see decoded text. Decoding refuses what could change the
//! path's structure or hide a second round of decoding: encoded `/` or `\` (`%2F`, `%5C`),
//! encoded `%` (`%25`: double encoding), NUL and other control bytes (raw or encoded),
//! invalid escapes, invalid UTF-8, and `.`/`..` segments (so `%2e%2e` is refused too).
//! Nothing decodes again later: templates substitute the decoded text, local sources use it
//! as a file name, HTTP sources percent-encode it afresh.

use std::fmt;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRefused(pub &'static str);

impl fmt::Display for PathRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Decodes a raw request path once; see the module docs for what is refused.
pub fn decode_path(raw: &str) -> Result<String, PathRefused> {
    if !raw.starts_with('/') {
        return Err(PathRefused("the path must start with '/'"));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathRefused("invalid percent-encoding"))?;
            match hex {
                b'/' | b'\\' => return Err(PathRefused("encoded path separators are refused")),
                b'%' => return Err(PathRefused("double percent-encoding is refused")),
                _ => {}
            }
            out.push(hex);
            i += 3;
        } else {
            if b == b'\\' {
                return Err(PathRefused("backslashes are refused"));
            }
            out.push(b);
            i += 1;
        }
    }
    if out.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Err(PathRefused("control characters are refused"));
    }
    let s = String::from_utf8(out).map_err(|_| PathRefused("the path is not valid UTF-8"))?;
    if s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(PathRefused("'.' and '..' segments are refused"));
    }
    Ok(s)
}

/// Checks a relative path built from a template: non-empty, not absolute, no backslash or
/// NUL, no empty, `.` or `..` segments. Used for local file names after substitution.
pub fn check_relative(path: &str) -> Result<(), PathRefused> {
    if path.is_empty() {
        return Err(PathRefused("the resolved path is empty"));
    }
    if path.starts_with('/') {
        return Err(PathRefused("absolute paths are refused"));
    }
    if path.contains('\\') {
        return Err(PathRefused("backslashes are refused"));
    }
    if path.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(PathRefused("control characters are refused"));
    }
    for seg in path.split('/') {
        match seg {
            "" => return Err(PathRefused("empty path segments are refused")),
            "." | ".." => return Err(PathRefused("'.' and '..' segments are refused")),
            _ => {}
        }
    }
    Ok(())
}

/// Percent-encodes a capture for a URL: every byte except RFC 3986 unreserved characters is
/// encoded within each `/`-separated segment; `/` itself stays a separator, so a capture like
/// `a/b c.mp4` becomes `a/b%20c.mp4`. Refuses `.`/`..` segments (URL normalisation would
/// otherwise climb out of the template's prefix).
pub fn encode_segments(value: &str) -> Result<String, PathRefused> {
    let mut out = String::with_capacity(value.len());
    for (i, seg) in value.split('/').enumerate() {
        if seg == "." || seg == ".." {
            return Err(PathRefused("'.' and '..' segments are refused"));
        }
        if i > 0 {
            out.push('/');
        }
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(out)
}

/// A parsed `${name}` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(String),
}

impl Template {
    /// Parses a template (syntax errors are messages for the config path).
    pub fn parse(text: &str) -> Result<Template, String> {
        let names = vr_crds::dataplane::template_placeholders(text)?;
        let mut pieces = Vec::new();
        let mut rest = text;
        for name in names {
            let marker = format!("${{{name}}}");
            let Some(at) = rest.find(&marker) else {
                return Err(format!("placeholder ${{{name}}} could not be located"));
            };
            if at > 0 {
                pieces.push(Piece::Lit(rest[..at].to_string()));
            }
            pieces.push(Piece::Var(name.to_string()));
            rest = &rest[at + marker.len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    /// The literal text before the first placeholder.
    pub fn literal_prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Lit(s)) => s,
            _ => "",
        }
    }

    /// Names of the placeholders.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(n) => Some(n.as_str()),
            Piece::Lit(_) => None,
        })
    }

    /// Expands the template; `value` maps a placeholder name to its (already encoded, if
    /// needed) text. Unknown names expand to nothing (config validation rules them out).
    pub fn expand<E>(&self, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(n) => out.push_str(&value(n)?),
            }
        }
        Ok(out)
    }
}

/// Captures of a matched request: numbered (`1`, `2`, …), named, and `path` (the decoded
/// request path without its leading `/`, unless the matcher names a group `path`).
/// A group that did not take part in the match captures the empty string.
pub fn captures(re: &regex::Regex, path: &str) -> Option<Vec<(String, String)>> {
    let caps = re.captures(path)?;
    let mut out = Vec::new();
    let mut has_path = false;
    for (i, name) in re.capture_names().enumerate().skip(1) {
        let v = caps.get(i).map_or("", |m| m.as_str()).to_string();
        out.push((i.to_string(), v.clone()));
        if let Some(n) = name {
            has_path |= n == "path";
            out.push((n.to_string(), v));
        }
    }
    if !has_path {
        out.push((
            "path".to_string(),
            path.strip_prefix('/').unwrap_or(path).to_string(),
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_path_decodes_once() {
        assert_eq!(decode_path("/a%20b/c.mp4").as_deref(), Ok("/a b/c.mp4"));
        assert_eq!(decode_path("/caf%C3%A9.mp4").as_deref(), Ok("/café.mp4"));
    }

    #[test]
    fn decode_path_refuses_every_traversal_and_smuggling_form() {
        for raw in [
            "/videos/../etc/passwd",
            "/videos/%2e%2e/etc/passwd",
            "/videos/%2E%2E/etc/passwd",
            "/videos/.%2e/etc/passwd",
            "/videos/a%2Fb.mp4",
            "/videos/a%2fb.mp4",
            "/videos/%252e%252e/x",
            "/videos/a%5Cb",
            "/videos/a\\b",
            "/videos/a%00.mp4",
            "/videos/a%0a.mp4",
            "/videos/./a.mp4",
            "/videos/%zz",
            "/videos/%2",
            "/videos/%ff.mp4",
            "videos/a.mp4",
        ] {
            assert!(decode_path(raw).is_err(), "{raw} must be refused");
        }
    }

    #[test]
    fn check_relative_refuses_escapes() {
        assert!(check_relative("a/b.mp4").is_ok());
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            "a\0b",
            "./a",
        ] {
            assert!(check_relative(p).is_err(), "{p:?} must be refused");
        }
    }

    #[test]
    fn captures_are_encoded_per_segment_into_urls() {
        assert_eq!(
            encode_segments("dir/a b?c#d&e=%.mp4").as_deref(),
            Ok("dir/a%20b%3Fc%23d%26e%3D%25.mp4")
        );
        assert_eq!(encode_segments("café").as_deref(), Ok("caf%C3%A9"));
        assert!(encode_segments("a/../b").is_err());
    }

    #[test]
    fn templates_expand_named_and_numbered_placeholders() {
        let t = Template::parse("raw/${name}-${1}.${ext}").expect("parses");
        assert_eq!(t.literal_prefix(), "raw/");
        let out: Result<String, ()> = t.expand(|n| {
            Ok(match n {
                "name" => "clip".into(),
                "1" => "x".into(),
                _ => "mp4".into(),
            })
        });
        assert_eq!(out.as_deref(), Ok("raw/clip-x.mp4"));
        assert_eq!(t.names().collect::<Vec<_>>(), ["name", "1", "ext"]);
    }

    #[test]
    fn captures_include_numbered_named_and_path() {
        let re = regex::Regex::new(r"^/v/(?P<name>[a-z]+)\.(mp4|webm)(x)?$").expect("regex");
        let caps = captures(&re, "/v/clip.webm").expect("matches");
        let get = |k: &str| caps.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("1"), Some("clip"));
        assert_eq!(get("name"), Some("clip"));
        assert_eq!(get("2"), Some("webm"));
        assert_eq!(get("3"), Some(""));
        assert_eq!(get("path"), Some("v/clip.webm"));
        assert!(captures(&re, "/v/clip.avi").is_none());
    }
}
