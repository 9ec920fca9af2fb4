//! The generated CustomResourceDefinitions: committed YAML is current, every property is
//! documented, CEL rules, printer columns, names and subresources are there, and the examples
//! use only fields the schema knows.

use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::Value;
use vr_crds::render::render;
use vr_crds::resources::{crds_yaml, Derivative, VideoResizerConfig};

const COMMITTED: &str = "videoresizer.io_crds.yaml";

fn crd_json<K: CustomResourceExt>() -> Value {
    serde_json::to_value(K::crd()).expect("crd serializes")
}

fn schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

#[test]
fn committed_crd_yaml_matches_the_types() {
    let path = format!("{}/{COMMITTED}", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = crds_yaml().expect("crds render to YAML");
    assert!(
        committed == generated,
        "crds/{COMMITTED} is stale: run `cargo run -p vr-crds --bin crdgen > crds/{COMMITTED}`"
    );
}

/// Paths of properties without a non-empty description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = format!("{path}.{name}");
            let documented = sub
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !documented {
                out.push(p.clone());
            }
            undocumented(sub, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undocumented(extra, &format!("{path}{{}}"), out);
    }
}

#[test]
fn every_property_of_both_crds_has_a_description() {
    for crd in [crd_json::<VideoResizerConfig>(), crd_json::<Derivative>()] {
        let mut missing = Vec::new();
        undocumented(schema(&crd), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{}: undocumented properties {missing:?}",
            crd["metadata"]["name"]
        );
    }
}

/// Every `(path, rule)` of `x-kubernetes-validations` in a schema.
fn rules(schema: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(list) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for r in list {
            let rule = r["rule"].as_str().unwrap_or_default().to_owned();
            assert!(
                r["message"].as_str().is_some_and(|m| !m.is_empty()),
                "rule {rule} at {path} has no message"
            );
            out.push((path.to_owned(), rule));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            rules(sub, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        rules(items, &format!("{path}[]"), out);
    }
}

#[test]
fn cel_rules_sit_where_they_apply() {
    let mut found = Vec::new();
    rules(schema(&crd_json::<VideoResizerConfig>()), "", &mut found);
    rules(schema(&crd_json::<Derivative>()), "derivative", &mut found);
    let at = |path: &str, needle: &str| found.iter().any(|(p, r)| p == path && r.contains(needle));
    for (path, needle) in [
        (
            ".spec.origins[].sources[]",
            "has(self.local) && !has(self.http)",
        ),
        (
            ".spec.origins[].sources[].http.auth",
            "has(self.headerName)",
        ),
        (".spec.signing", "self.keySecretRefs.size() > 0"),
        (".spec.workload", "self.minReplicas <= self.maxReplicas"),
        (".spec.workload", "podDisruptionBudget.minAvailable"),
        (".spec.responsive", "!has(b.maxWidth)"),
        ("derivative.spec.config", "self == oldSelf"),
        (
            ".spec.rollout.analysis.provider",
            "self.type == 'prometheus'",
        ),
    ] {
        assert!(
            at(path, needle),
            "no rule containing {needle:?} at {path}: {found:?}"
        );
    }
    assert_eq!(found.len(), 8, "{found:?}");
}

/// Lists under a CEL rule must be bounded, or the API server's cost estimate refuses the CRD.
#[test]
fn lists_and_strings_that_rules_touch_are_bounded() {
    let crd = crd_json::<VideoResizerConfig>();
    let spec = &schema(&crd)["properties"]["spec"]["properties"];
    assert_eq!(spec["origins"]["maxItems"], 64);
    assert_eq!(
        spec["origins"]["items"]["properties"]["sources"]["maxItems"],
        16
    );
    assert_eq!(
        spec["signing"]["properties"]["keySecretRefs"]["maxItems"],
        8
    );
    assert_eq!(spec["admin"]["properties"]["tokens"]["maxItems"], 32);
    assert_eq!(
        spec["responsive"]["properties"]["breakpoints"]["maxItems"],
        32
    );
    let derivative = crd_json::<Derivative>();
    let d = &schema(&derivative)["properties"]["spec"]["properties"];
    assert_eq!(d["config"]["maxLength"], 253);
    assert_eq!(d["width"]["minimum"], 10.0);
    assert_eq!(d["width"]["maximum"], 8192.0);
}

#[test]
fn names_scope_subresources_and_printer_columns() {
    let vrc = crd_json::<VideoResizerConfig>();
    assert_eq!(
        vrc["metadata"]["name"],
        "videoresizerconfigs.videoresizer.io"
    );
    assert_eq!(vrc["spec"]["scope"], "Namespaced");
    assert_eq!(
        vrc["spec"]["names"]["shortNames"],
        serde_json::json!(["vrc"])
    );
    let v = &vrc["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(v["subresources"]["status"], serde_json::json!({}));
    let columns = |v: &Value| -> Vec<(String, String)> {
        v["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["jsonPath"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        columns(v),
        [
            ("Revision".into(), ".status.activeRevision".into()),
            ("Phase".into(), ".status.phase".into()),
            ("Canary".into(), ".status.canaryWeight".into()),
            ("Age".into(), ".metadata.creationTimestamp".into()),
        ]
    );
    let conditions = &schema(&vrc)["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );

    let vrd = crd_json::<Derivative>();
    assert_eq!(vrd["metadata"]["name"], "derivatives.videoresizer.io");
    assert_eq!(vrd["spec"]["scope"], "Namespaced");
    assert_eq!(
        vrd["spec"]["names"]["shortNames"],
        serde_json::json!(["vrd"])
    );
    let v = &vrd["spec"]["versions"][0];
    assert_eq!(v["subresources"]["status"], serde_json::json!({}));
    let names: Vec<String> = columns(v).into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["Config", "Width", "Height", "Mode", "Age"]);
    // The preset's fields are flattened into the Derivative's spec.
    let spec = &schema(&vrd)["properties"]["spec"];
    for field in [
        "config", "width", "height", "mode", "fit", "format", "time", "loop", "preload",
    ] {
        assert!(
            spec["properties"].get(field).is_some(),
            "spec.{field} missing"
        );
    }
    assert_eq!(spec["required"], serde_json::json!(["config"]));
}

/// Keys present in `input` but absent from `output` (fields the types silently dropped).
fn dropped_keys(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                match o.get(k) {
                    Some(ov) => dropped_keys(v, ov, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                dropped_keys(iv, ov, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("yaml"))
        .collect()
}

fn example(name: &str) -> String {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn examples_use_only_known_fields_and_render_cleanly() {
    let config_doc = documents(&example("videoresizerconfig.yaml"));
    let config: VideoResizerConfig =
        serde_json::from_value(config_doc[0].clone()).expect("config parses");
    let mut missing = Vec::new();
    let back = serde_json::to_value(&config).expect("serializes");
    dropped_keys(&config_doc[0], &back, "", &mut missing);

    let mut derivatives = Vec::new();
    for doc in documents(&example("derivatives.yaml")) {
        let d: Derivative = serde_json::from_value(doc.clone()).expect("derivative parses");
        let back = serde_json::to_value(&d).expect("serializes");
        dropped_keys(&doc, &back, "", &mut missing);
        derivatives.push(d);
    }
    assert!(
        missing.is_empty(),
        "examples use unknown fields: {missing:?}"
    );
    let names: Vec<_> = derivatives
        .iter()
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    assert_eq!(names, ["mobile", "tablet", "desktop", "thumbnail"]);

    let rendered = render(&config, &derivatives).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rendered.config.derivatives.len(), 4);
}

/// The `responsive.breakpoints` of a YAML document, as `(maxWidth, derivative)`.
fn breakpoints(doc: &Value) -> Vec<(Option<u64>, String)> {
    let spec = doc.get("spec").unwrap_or(doc);
    spec["responsive"]["breakpoints"]
        .as_array()
        .expect("responsive.breakpoints")
        .iter()
        .map(|b| {
            (
                b["maxWidth"].as_u64(),
                b["derivative"].as_str().expect("derivative").to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_example_uses_the_production_imquery_breakpoints_and_one_set_of_derivatives() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| {
        let path = format!("{root}/{path}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    // The production IMQuery set: small ≤ 854 → mobile, medium ≤ 1280 → tablet, large → desktop.
    let production = vec![
        (Some(854), "mobile".to_owned()),
        (Some(1280), "tablet".to_owned()),
        (None, "desktop".to_owned()),
    ];
    for path in [
        "crds/examples/videoresizerconfig.yaml",
        "charts/video-resizer/examples/videoresizerconfig.yaml",
        "examples/standalone.yaml",
    ] {
        assert_eq!(
            breakpoints(&documents(&read(path))[0]),
            production,
            "{path}"
        );
    }
    let specs = |path: &str| -> Vec<Value> {
        documents(&read(path))
            .into_iter()
            .map(|d| d["spec"].clone())
            .collect()
    };
    assert_eq!(
        specs("charts/video-resizer/examples/derivatives.yaml"),
        specs("crds/examples/derivatives.yaml"),
        "the chart's example derivatives are the same as crds/examples/"
    );
}
