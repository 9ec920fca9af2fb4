//! Writes the CRD reference pages into `docs/reference/` (or the directory given as the only
//! argument); `cargo test -p vr-crds` fails when the committed pages differ.

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference")
        });
    let pages = match vr_crds::reference::pages() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("refdocs: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text);
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| write("README.md", &vr_crds::reference::index()))
        .and_then(|()| pages.iter().try_for_each(|(n, t)| write(n, t)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("refdocs: {}: {e}", dir.display());
            std::process::ExitCode::FAILURE
        }
    }
}
