//! Prints the CustomResourceDefinitions of `videoresizer.io` as one multi-document YAML stream
//! (committed as `crds/videoresizer.io_crds.yaml`; a test fails when it is stale).

fn main() -> std::process::ExitCode {
    match vr_crds::resources::crds_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
