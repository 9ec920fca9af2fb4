//! The engine-free images (`scripts/images.sh`) and the Dockerfiles (`docker/*.Dockerfile`)
//! describe the same images: the same Debian release and base, the same packages on top, the
//! same numeric user, entry point, working directory and exposed ports. Plain `cargo test`
//! (static: no image is built here); `e2e/run cluster` builds the images and checks the built
//! archives' configs against the same Dockerfiles (`built_images_match_the_dockerfiles`).

use std::collections::BTreeSet;
use std::path::Path;
use vr_e2e::repo;

fn read(path: &str) -> String {
    let p = repo().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The value of `NAME="..."` (or `NAME=word`) in the images script.
fn script_var(script: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    let line = script
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("scripts/images.sh: no {name}="));
    line[prefix.len()..]
        .split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches('"')
        .to_string()
}

fn words(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// What a Dockerfile's runtime stage says about its image.
#[derive(Debug, PartialEq)]
struct Described {
    base: String,
    packages: BTreeSet<String>,
    user: String,
    entrypoint: String,
    workdir: String,
    ports: BTreeSet<String>,
}

fn dockerfile(name: &str) -> Described {
    let text = read(&format!("docker/{name}"));
    let runtime = text
        .split("AS runtime")
        .nth(1)
        .unwrap_or_else(|| panic!("{name}: no runtime stage"));
    let base = text
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string();
    // `apt-get install -y --no-install-recommends a b \` in the runtime stage.
    let packages = runtime
        .lines()
        .filter_map(|l| l.split("apt-get install").nth(1))
        .flat_map(|rest| rest.split_whitespace().map(str::to_string))
        .filter(|w| !w.starts_with('-') && w != "\\" && w != "&&")
        .collect();
    let last = |key: &str| {
        runtime
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .next_back()
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let entrypoint = last("ENTRYPOINT ")
        .trim_matches(|c| c == '[' || c == ']' || c == '"')
        .to_string();
    let workdir = match last("WORKDIR ") {
        w if w.is_empty() => "/".to_string(),
        w => w,
    };
    Described {
        base,
        packages,
        user: last("USER "),
        entrypoint,
        workdir,
        ports: words(&last("EXPOSE ")),
    }
}

/// What `scripts/images.sh` builds for the image whose binary is `bin`.
fn script_image(script: &str, bin: &str) -> Described {
    // image "$NAME" KIND "$T/BIN" "$PORTS" WORKDIR
    let call = script
        .lines()
        .find(|l| l.starts_with("image ") && l.contains(&format!("\"$T/{bin}\"")))
        .unwrap_or_else(|| panic!("scripts/images.sh builds no image of {bin}"));
    let args: Vec<&str> = call.split_whitespace().collect();
    let (kind, ports_var, workdir) = (args[2], args[4], args[5]);
    let ports = words(&script_var(
        script,
        ports_var.trim_matches(|c| c == '"' || c == '$'),
    ));
    let suite = script_var(script, "SUITE");
    let (base, packages) = match kind {
        // Debian's -slim images are its minbase variant.
        "dataplane" => {
            assert_eq!(script_var(script, "DATAPLANE_BASE"), "minbase");
            (
                format!("debian:{suite}-slim"),
                words(&script_var(script, "DATAPLANE_PACKAGES")),
            )
        }
        "distroless" => {
            let pkgs = words(&script_var(script, "DISTROLESS_PACKAGES"));
            // What gcr.io/distroless/cc-debian12 is made of (its glibc, libgcc and CA
            // certificates; Debian 12 is bookworm); libssl/libstdc++ are not needed by
            // binaries that link neither (rustls, no C++).
            for p in ["libc6", "libgcc-s1", "ca-certificates", "tzdata", "netbase"] {
                assert!(pkgs.contains(p), "the distroless recipe lacks {p}");
            }
            assert_eq!(suite, "bookworm", "distroless cc-debian12 is Debian 12");
            (
                "gcr.io/distroless/cc-debian12:nonroot".to_string(),
                BTreeSet::new(),
            )
        }
        other => panic!("scripts/images.sh: unknown image kind {other}"),
    };
    Described {
        base,
        packages,
        user: script_var(script, "IMAGE_USER"),
        entrypoint: format!("/usr/local/bin/{bin}"),
        workdir: workdir.to_string(),
        ports,
    }
}

#[test]
fn images_script_builds_what_the_dockerfiles_describe() {
    let script = read("scripts/images.sh");
    for (file, bin) in [
        ("dataplane.Dockerfile", "vr-dataplane"),
        ("operator.Dockerfile", "vr-operator"),
        ("cli.Dockerfile", "vrctl"),
    ] {
        assert_eq!(
            script_image(&script, bin),
            dockerfile(file),
            "scripts/images.sh and docker/{file} describe different images"
        );
    }
}

#[test]
fn image_names_come_from_the_chart_values() {
    let script = read("scripts/images.sh");
    let values = read("charts/video-resizer/values.yaml");
    for section in ["dataplane", "operator", "cli"] {
        assert!(
            script.contains(&format!("$(values_repository {section})")),
            "scripts/images.sh does not name the {section} image from values.yaml"
        );
        let in_section = values
            .split(&format!("\n{section}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("values.yaml: no {section}: section"));
        assert!(
            in_section
                .split("\n\n")
                .next()
                .is_some_and(|s| s.contains("repository: ")),
            "values.yaml: {section} has no image repository"
        );
    }
    assert!(values.contains("\nimageRegistry: "));
}

/// The built archives (`e2e/run cluster` builds them into .cache/images) carry the config the
/// Dockerfiles describe.
#[test]
#[ignore = "needs the images: scripts/images.sh (run by e2e/run cluster)"]
fn built_images_match_the_dockerfiles() {
    let dir = repo().join(".cache/images");
    for (file, bin, archive) in [
        ("dataplane.Dockerfile", "vr-dataplane", "dataplane"),
        ("operator.Dockerfile", "vr-operator", "operator"),
        ("cli.Dockerfile", "vrctl", "vrctl"),
    ] {
        let tar = std::fs::read_dir(&dir)
            .expect(".cache/images")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{archive}_")))
            })
            .unwrap_or_else(|| panic!("no {archive} archive in {}", dir.display()));
        let config = image_config(&tar);
        let want = dockerfile(file);
        let c = &config["config"];
        assert_eq!(c["User"], want.user.as_str(), "{bin}: user");
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!([want.entrypoint]),
            "{bin}: entrypoint"
        );
        assert_eq!(c["WorkingDir"], want.workdir.as_str(), "{bin}: workdir");
        let ports: BTreeSet<String> = c["ExposedPorts"]
            .as_object()
            .map(|m| {
                m.keys()
                    .map(|k| k.trim_end_matches("/tcp").to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ports, want.ports, "{bin}: ports");
    }
}

/// The config JSON of the single image in an OCI archive (via its manifest.json).
fn image_config(tar: &Path) -> serde_json::Value {
    let get = |member: &str| {
        let out = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(tar)
            .arg(member)
            .output()
            .expect("tar");
        assert!(out.status.success(), "{}: no {member}", tar.display());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let manifest = get("manifest.json");
    let config = manifest[0]["Config"].as_str().expect("Config").to_string();
    get(&config)
}
