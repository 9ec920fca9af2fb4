//! The chart's README (what `helm show readme` prints) documents every value of
//! `charts/video-resizer/values.yaml`: a value is a leaf unless `values.schema.json` describes
//! it as an object with named properties. Regenerate with `python3 scripts/chart-readme.py`.

use serde_json::Value;

fn chart_file(name: &str) -> String {
    let path = format!(
        "{}/../charts/video-resizer/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Dotted paths of the documented values under `values`, as the README generator walks them.
fn leaves(values: &Value, schema: &Value, root: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(map) = values else { return };
    for (key, value) in map {
        let p = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let mut sub = &schema["properties"][key];
        if let Some(r) = sub["$ref"].as_str() {
            sub = &root["definitions"][r.rsplit('/').next().unwrap_or_default()];
        }
        match value {
            Value::Object(m) if !m.is_empty() && sub.get("properties").is_some() => {
                leaves(value, sub, root, &p, out)
            }
            _ => out.push(p),
        }
    }
}

#[test]
fn the_chart_readme_documents_every_value() {
    let values: Value = serde_yaml::from_str(&chart_file("values.yaml")).expect("values.yaml");
    let schema: Value =
        serde_json::from_str(&chart_file("values.schema.json")).expect("values.schema.json");
    let readme = chart_file("README.md");
    let mut paths = Vec::new();
    leaves(&values, &schema, &schema, "", &mut paths);
    assert!(paths.len() > 40, "{paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !readme.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "charts/video-resizer/README.md does not document {missing:?}: run `python3 scripts/chart-readme.py`"
    );
}
