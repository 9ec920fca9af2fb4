use super::*;

fn params() -> WorkloadParams {
    WorkloadParams {
        config: "web".into(),
        namespace: "media".into(),
        owner: OwnerReference {
            api_version: "videoresizer.io/v1alpha1".into(),
            kind: "VideoResizerConfig".into(),
            name: "web".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        image: "video-resizer/dataplane:0.1.0".into(),
        image_pull_policy: None,
        min_replicas: 2,
        max_replicas: 10,
        target_cpu_percent: 70,
        queue_depth_target: Some(4),
        scale_down_stabilization_seconds: 300,
        requests: BTreeMap::from([
            ("cpu".into(), "500m".into()),
            ("memory".into(), "512Mi".into()),
        ]),
        limits: BTreeMap::from([("memory".into(), "2Gi".into())]),
        pdb_min_available: 1,
        sizing_args: vec!["--transform-slots".into(), "2".into()],
        disk_cache_bytes: Some(1 << 30),
        secrets: BTreeSet::from([
            ("origin-token".into(), "token".into()),
            ("admin".into(), "ops".into()),
        ]),
    }
}

#[test]
fn deployment_leaves_replicas_to_the_hpa_and_runs_restricted() {
    let d = deployment(&params());
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, None);
    let pod = spec.template.spec.expect("pod");
    let psc = pod.security_context.expect("pod security");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_),
        Some("RuntimeDefault".into())
    );
    let c = &pod.containers[0];
    let sc = c.security_context.clone().expect("container security");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    assert!(c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_some_and(|r| r.contains_key("cpu")));
}

#[test]
fn every_referenced_secret_is_mounted_read_only_where_the_config_expects_it() {
    let d = deployment(&params());
    let pod = d.spec.expect("spec").template.spec.expect("pod");
    let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
    for secret in ["origin-token", "admin"] {
        let m = mounts
            .iter()
            .find(|m| m.mount_path == format!("{}/{secret}", contract::SECRETS_DIR))
            .expect("mounted");
        assert_eq!(m.read_only, Some(true));
    }
    // The file path the config uses lies under the mount.
    assert!(contract::secret_file_path("origin-token", "token")
        .starts_with(&format!("{}/origin-token/", contract::SECRETS_DIR)));
}

#[test]
fn the_data_plane_role_only_reads_configmaps() {
    let r = role(&params());
    let rules = r.rules.expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources, Some(vec!["configmaps".to_string()]));
    assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
}

#[test]
fn hpa_scales_on_cpu_and_optionally_queue_depth_with_stabilisation() {
    let h = hpa(&params()).spec.expect("spec");
    assert_eq!(h.min_replicas, Some(2));
    assert_eq!(h.max_replicas, 10);
    let m = h.metrics.expect("metrics");
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[1].pods.as_ref().map(|p| p.metric.name.as_str()),
        Some("vr_transform_queue_depth")
    );
    assert_eq!(
        h.behavior
            .and_then(|b| b.scale_down)
            .and_then(|s| s.stabilization_window_seconds),
        Some(300)
    );
}

#[test]
fn every_child_is_owned_and_labelled() {
    let p = params();
    let metas = [
        service_account(&p).metadata,
        role(&p).metadata,
        role_binding(&p).metadata,
        deployment(&p).metadata,
        service(&p).metadata,
        hpa(&p).metadata,
        pdb(&p).metadata,
    ];
    for m in metas {
        assert_eq!(
            m.owner_references.as_ref().map(|o| o[0].uid.as_str()),
            Some("u-1")
        );
        let l = m.labels.expect("labels");
        assert_eq!(
            l.get(contract::LABEL_CONFIG).map(String::as_str),
            Some("web")
        );
        assert_eq!(
            l.get("app.kubernetes.io/managed-by").map(String::as_str),
            Some(contract::FIELD_MANAGER)
        );
    }
}

#[test]
fn the_pod_selector_matches_every_configs_dataplane_pods() {
    assert_eq!(
        dataplane_pod_selector(),
        "app.kubernetes.io/component=dataplane,app.kubernetes.io/name=video-resizer"
    );
    assert_eq!(config_of_workload(&workload_name("web")), Some("web"));
    assert_eq!(config_of_workload("web"), None);
}
