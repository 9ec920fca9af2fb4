//! Fuzzes the URL API: any query string with any client-hint headers must resolve or be
//! refused with a list of issues, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vr_dataplane::request::params::{self, ParamsConfig};

const CONFIG: &str = include_str!("../../examples/standalone.yaml");

fn config() -> &'static ParamsConfig {
    static CFG: OnceLock<ParamsConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut cfg: vr_crds::DataPlaneConfig = serde_yaml::from_str(CONFIG).expect("example config parses");
        cfg.admin.tokens.clear();
        params::compile(&cfg)
    })
}

fuzz_target!(|data: &[u8]| {
    // First line: query; following lines: `name: value` headers.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or("");
    let mut headers = http::HeaderMap::new();
    for line in lines.take(8) {
        if let Some((n, v)) = line.split_once(':') {
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(n.trim().as_bytes()), http::HeaderValue::from_str(v.trim())) {
                headers.append(n, v);
            }
        }
    }
    if let Ok(r) = params::resolve(query, &headers, config()) {
        if let vr_dataplane::request::variant::Transform::Variant(v) = &r.transform {
            assert_eq!(v.clone().normalized(), *v, "resolved variants are normalized");
        }
        let _ = params::warnings_header(&r.warnings);
    }
});
