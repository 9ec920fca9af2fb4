//! Static checks of the container build files (no engine runs here, so they are not built by
//! the tests): multi-stage, the build step is the e2e entry point's `cargo build` of the right
//! package in release mode with the lock file, a numeric non-root user, and the data plane's
//! runtime image carries ffmpeg.

use vr_e2e::repo;

fn dockerfile(name: &str) -> String {
    let path = repo().join("docker").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(name: &str, package: &str, bin: &str) -> String {
    let text = dockerfile(name);
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, 2, "{name}: a build stage and a runtime stage");
    let build = format!("cargo build --release --locked -p {package} --bin {bin}");
    assert!(text.contains(&build), "{name}: build step is not `{build}`");
    let e2e_run = std::fs::read_to_string(repo().join("e2e/run")).expect("e2e/run");
    assert!(
        e2e_run.contains(&format!("-p {package}")),
        "{name}: e2e/run does not build {package}, so the image would build something untested"
    );
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .unwrap_or_else(|| panic!("{name}: no USER"));
    assert_eq!(user, "USER 65532:65532", "{name}: numeric non-root user");
    assert!(text.contains("not been built here") || text.contains("not built here"));
    text
}

#[test]
fn dockerfiles_build_what_the_e2e_suites_test_and_run_as_non_root() {
    let dp = check("dataplane.Dockerfile", "vr-dataplane", "vr-dataplane");
    let runtime = dp.split("AS runtime").nth(1).expect("runtime stage");
    assert!(
        runtime.contains("ffmpeg"),
        "the data plane image carries ffmpeg"
    );
    check("operator.Dockerfile", "vr-operator", "vr-operator");
    check("cli.Dockerfile", "vr-cli", "vrctl");
}
