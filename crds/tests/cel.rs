//! The CRDs' CEL rules evaluated client-side (kube's `cel` feature), so a typo or a wrong rule
//! fails here rather than at `kubectl apply`. Opt-in, since it compiles a CEL interpreter:
//! `cargo test -p vr-crds --features cel --test cel`.
#![cfg(feature = "cel")]

use kube::core::cel::{compile_schema, estimate_rule_cost, CompiledSchema, Validator};
use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::{json, Value};
use vr_crds::resources::{Derivative, VideoResizerConfig};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = serde_json::to_value(K::crd()).expect("crd serializes");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn documents(file: &str) -> Vec<Value> {
    let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("yaml"))
        .collect()
}

fn example_config() -> Value {
    documents("videoresizerconfig.yaml").remove(0)
}

/// Messages of the rules `object` breaks (empty when it passes).
fn broken<K: CustomResourceExt>(object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema::<K>(), object, old) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

/// Walks the JSON schema and its compiled form together, checking every rule.
fn check_rules(json: &Value, compiled: &CompiledSchema, path: &str, problems: &mut Vec<String>) {
    for e in compiled.compilation_errors() {
        problems.push(format!("{path}: does not compile: {e}"));
    }
    if let Some(rules) = json
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for r in rules {
            let rule = r["rule"].as_str().unwrap_or_default();
            // Cost only: kube-cel's scope check (`analyze_rule`) flags comprehension variables
            // such as `b` in `list.all(b, ...)` as unknown. Unknown names would fail the
            // behaviour tests below anyway.
            for w in estimate_rule_cost(rule, compiled) {
                problems.push(format!("{path}: {rule}: {}", w.message));
            }
        }
    }
    if let Some(props) = json.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            if let Some(c) = compiled.properties.get(name) {
                check_rules(sub, c, &format!("{path}.{name}"), problems);
            }
        }
    }
    if let (Some(items), Some(c)) = (json.get("items"), compiled.items.as_deref()) {
        check_rules(items, c, &format!("{path}[]"), problems);
    }
}

#[test]
fn every_rule_compiles_without_cost_warnings() {
    for s in [schema::<VideoResizerConfig>(), schema::<Derivative>()] {
        let mut problems = Vec::new();
        check_rules(&s, &compile_schema(&s), "", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn the_examples_pass_every_rule() {
    assert_eq!(
        broken::<VideoResizerConfig>(&example_config(), None),
        Vec::<String>::new()
    );
    for d in documents("derivatives.yaml") {
        assert_eq!(broken::<Derivative>(&d, None), Vec::<String>::new());
    }
}

#[test]
fn a_source_must_set_exactly_the_block_its_kind_names() {
    let mut c = example_config();
    c["spec"]["origins"][0]["sources"][0]["local"] = json!({ "root": "/media", "path": "${id}" });
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(errs.iter().any(|e| e.contains("only that one")), "{errs:?}");

    let mut c = example_config();
    c["spec"]["origins"][0]["sources"][1]["kind"] = json!("local");
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(errs.iter().any(|e| e.contains("only that one")), "{errs:?}");
}

#[test]
fn header_auth_needs_a_header_name_and_bearer_refuses_one() {
    let mut c = example_config();
    c["spec"]["origins"][0]["sources"][0]["http"]["auth"]["type"] = json!("header");
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(errs.iter().any(|e| e.contains("headerName")), "{errs:?}");

    c["spec"]["origins"][0]["sources"][0]["http"]["auth"]["headerName"] = json!("X-Api-Key");
    assert_eq!(broken::<VideoResizerConfig>(&c, None), Vec::<String>::new());

    c["spec"]["origins"][0]["sources"][0]["http"]["auth"]["type"] = json!("bearer");
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(errs.iter().any(|e| e.contains("headerName")), "{errs:?}");
}

#[test]
fn required_signing_needs_a_key() {
    let mut c = example_config();
    c["spec"]["signing"]["keySecretRefs"] = json!([]);
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(
        errs.iter().any(|e| e.contains("at least one key")),
        "{errs:?}"
    );
    c["spec"]["signing"] = json!({ "required": true });
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(
        errs.iter().any(|e| e.contains("at least one key")),
        "{errs:?}"
    );
    c["spec"]["signing"] = json!({ "required": false });
    assert_eq!(broken::<VideoResizerConfig>(&c, None), Vec::<String>::new());
}

#[test]
fn replica_bounds_and_disruption_budget_must_agree() {
    let mut c = example_config();
    c["spec"]["workload"] = json!({ "minReplicas": 5, "maxReplicas": 3 });
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(
        errs.iter()
            .any(|e| e.contains("must not exceed maxReplicas")),
        "{errs:?}"
    );

    // Defaults (minReplicas 2) apply before the rule, as on the API server.
    c["spec"]["workload"] = json!({ "podDisruptionBudget": { "minAvailable": 3 } });
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(errs.iter().any(|e| e.contains("minAvailable")), "{errs:?}");

    c["spec"].as_object_mut().expect("spec").remove("workload");
    assert_eq!(broken::<VideoResizerConfig>(&c, None), Vec::<String>::new());
}

#[test]
fn only_the_last_breakpoint_may_omit_max_width() {
    let mut c = example_config();
    c["spec"]["responsive"]["breakpoints"] = json!([
        { "derivative": "mobile" },
        { "maxWidth": 1280, "derivative": "tablet" },
    ]);
    let errs = broken::<VideoResizerConfig>(&c, None);
    assert!(
        errs.iter().any(|e| e.contains("only the last breakpoint")),
        "{errs:?}"
    );

    c["spec"]["responsive"]["breakpoints"] = json!([{ "maxWidth": 640, "derivative": "mobile" }]);
    assert_eq!(broken::<VideoResizerConfig>(&c, None), Vec::<String>::new());
    c["spec"]["responsive"] = json!({});
    assert_eq!(broken::<VideoResizerConfig>(&c, None), Vec::<String>::new());
}

#[test]
fn a_derivative_cannot_move_to_another_config() {
    let old = documents("derivatives.yaml").remove(0);
    let mut new = old.clone();
    new["spec"]["width"] = json!(600);
    assert_eq!(broken::<Derivative>(&new, Some(&old)), Vec::<String>::new());
    new["spec"]["config"] = json!("other");
    let errs = broken::<Derivative>(&new, Some(&old));
    assert!(
        errs.iter().any(|e| e.contains("config is immutable")),
        "{errs:?}"
    );
}
