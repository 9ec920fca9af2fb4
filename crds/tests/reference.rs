//! The committed reference pages (`docs/reference/`) match the CRD schema, and the chart reads
//! the generated CRD file rather than a copy.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_reference_docs_match_the_crd_schema() {
    let dir = repo().join("docs/reference");
    let mut pages = vr_crds::reference::pages().expect("schema serializes");
    pages.push(("README.md".into(), vr_crds::reference::index()));
    for (name, text) in pages {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == text,
            "docs/reference/{name} is stale: run `cargo run -q -p vr-crds --bin refdocs`"
        );
    }
}

#[test]
fn reference_pages_document_defaults_bounds_and_rules() {
    let pages = vr_crds::reference::pages().expect("schema serializes");
    let vrc = &pages[0].1;
    assert!(vrc.contains("| `spec.origins` |"), "origins row");
    assert!(
        vrc.contains("`spec.rollout.steps[].weight`"),
        "nested list fields"
    );
    assert!(vrc.contains("max items 64"), "bounds");
    assert!(vrc.contains("## Validation rules"), "CEL rules");
    let vrd = &pages[1].1;
    assert!(vrd.contains("| `spec.width` |") && vrd.contains("min 10; max 8192"));
}

#[test]
fn the_chart_reads_the_generated_crd_file() {
    let link = repo().join("charts/video-resizer/files/crds.yaml");
    let target = std::fs::read_link(&link).expect("files/crds.yaml is a symbolic link");
    assert_eq!(
        target,
        PathBuf::from("../../../crds/videoresizer.io_crds.yaml")
    );
    let through = std::fs::read_to_string(&link).expect("the link resolves");
    let generated = vr_crds::resources::crds_yaml().expect("crds render");
    assert_eq!(through, generated, "the chart would install stale CRDs");
}
