//! A small parser for the Prometheus / OpenMetrics text exposition format, enough to read the
//! data plane's `/metrics`: sample lines with labels (escaped values), `#` lines, `EOF`.
//!
//! Like Prometheus itself, a line that is not valid fails the whole scrape: a half-read page
//! would otherwise look like counters that went down (a restart) and inflate the next window.
//! The parser never panics, whatever the input (property-tested).

/// One sample line: `name{label="value",...} value [timestamp] [# exemplar]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written (e.g. `vr_requests_total`, `vr_request_duration_seconds_bucket`).
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a metrics page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics text line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Parses a whole page. `#` lines (HELP, TYPE, UNIT, EOF, comments) and blank lines are skipped;
/// anything after `# EOF` is ignored.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim() == "# EOF" {
            break;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|problem| ParseError {
            line: i + 1,
            problem,
        })?;
        out.push(sample);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let line = line.trim_start();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("metric name expected");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("space expected before the value");
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("value expected")?;
    let value = parse_value(value_text).ok_or("value is not a number")?;
    // An optional timestamp, then an optional OpenMetrics exemplar (`# {...} v [ts]`).
    if let Some(next) = fields.next() {
        if next != "#" {
            parse_value(next).ok_or("timestamp is not a number")?;
            if let Some(after) = fields.next() {
                if after != "#" {
                    return Err("unexpected text after the timestamp");
                }
            }
        }
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

type Labels = Vec<(String, String)>;

/// Parses `name="value",...}` (the opening brace already consumed); returns the labels and the
/// text after the closing brace.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated label set")?;
        let name = &s[..name_end];
        if name.is_empty() {
            return Err("label name expected");
        }
        s = s[name_end..].trim_start();
        s = s
            .strip_prefix('=')
            .ok_or("'=' expected after a label name")?;
        s = s.trim_start();
        s = s
            .strip_prefix('"')
            .ok_or("'\"' expected to open a label value")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        // Prometheus keeps unknown escapes as written.
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated label value"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err("',' or '}' expected after a label value");
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_data_plane_page_shape() {
        let text = "# HELP vr_requests Requests served.\n\
# TYPE vr_requests counter\n\
vr_requests_total{status_class=\"2xx\",cache=\"MISS\",revision=\"r3\",role=\"canary\"} 7\n\
vr_requests_created{status_class=\"2xx\"} 1.7e9\n\
vr_request_duration_seconds_bucket{revision=\"r3\",role=\"canary\",le=\"+Inf\"} 7 1700000000\n\
plain_metric 1.5\n\
# EOF\n\
garbage after eof {{{\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "vr_requests_total");
        assert_eq!(s[0].label("cache"), Some("MISS"));
        assert_eq!(s[0].value, 7.0);
        assert_eq!(s[2].label("le"), Some("+Inf"));
        assert_eq!(s[3].labels, vec![]);
        assert_eq!(s[3].value, 1.5);
    }

    #[test]
    fn unescapes_label_values_with_quotes_backslashes_and_newlines() {
        let s = parse("m{a=\"x\\\"y\\\\z\\nw\",b=\"}{,\"} 1\n").unwrap();
        assert_eq!(s[0].label("a"), Some("x\"y\\z\nw"));
        assert_eq!(s[0].label("b"), Some("}{,"));
    }

    #[test]
    fn accepts_exemplars_and_special_values() {
        let s = parse("m_bucket{le=\"1\"} 3 # {trace_id=\"a\"} 0.5 123\nn NaN\no -Inf\n").unwrap();
        assert_eq!(s[0].value, 3.0);
        assert!(s[1].value.is_nan());
        assert_eq!(s[2].value, f64::NEG_INFINITY);
    }

    #[test]
    fn rejects_broken_lines_with_their_line_number() {
        for bad in [
            "m{a=\"x} 1",
            "m{a=x} 1",
            "m 1 2 3",
            "m abc",
            "{a=\"b\"} 1",
            "m{a=\"b\"}1",
            "m",
        ] {
            let err = parse(&format!("# ok\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_text_made_of_format_characters(
            text in "[a-z_{}=\",\\\\ #\n0-9.+eEInfa-]{0,200}"
        ) {
            let _ = parse(&text);
        }

        #[test]
        fn round_trips_any_label_value(value in "\\PC{0,40}", n in 0u64..1_000_000) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let s = parse(&format!("m{{l=\"{escaped}\"}} {n}\n")).unwrap();
            prop_assert_eq!(s[0].label("l"), Some(value.as_str()));
            prop_assert_eq!(s[0].value, n as f64);
        }
    }
}
