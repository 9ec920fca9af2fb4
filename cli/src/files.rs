//! Config files read offline: every YAML/JSON document becomes a `VideoResizerConfig` or a
//! `Derivative` (each parse error located by its path), then every config is rendered with the
//! derivatives given alongside it by [`vr_crds::render::render`] — the function the operator
//! calls — so an error here is the error the operator would put in the config's status.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use vr_crds::contract::GROUP;
use vr_crds::render::{render, Rendered};
use vr_crds::resources::{Derivative, VideoResizerConfig, VERSION};

/// One problem, located: the file, the object (`VideoResizerConfig/web`) and the field path
/// (`spec.origins[0].matcher`, or `Derivative/mobile spec.width` as the operator words it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub object: String,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.file, self.object, self.path, self.message
        )
    }
}

/// A config found in a file.
#[derive(Debug, Clone)]
pub struct FoundConfig {
    pub file: String,
    pub config: VideoResizerConfig,
}

/// Everything read from the files.
#[derive(Debug, Default)]
pub struct Loaded {
    pub configs: Vec<FoundConfig>,
    pub derivatives: Vec<Derivative>,
    pub problems: Vec<Problem>,
    /// Objects of other API groups (`v1/Secret`, `kustomize.config.k8s.io/...`), skipped, as
    /// `apiVersion kind/name`.
    pub ignored: Vec<String>,
}

/// The outcome for one config.
#[derive(Debug)]
pub struct Checked {
    pub file: String,
    pub config: VideoResizerConfig,
    /// The rendered document, or the problems that stop it.
    pub result: Result<Rendered, Vec<Problem>>,
}

/// Reads `(name, text)` sources: every document of every source, in order. Empty documents
/// and objects of other API groups are skipped (so `kustomize build | vrctl validate -` and
/// a GitOps directory with Secrets and Kustomizations work); a document without
/// `apiVersion`, or of group `videoresizer.io` with another version or kind, is a problem.
pub fn load(sources: &[(String, String)]) -> Loaded {
    let mut out = Loaded::default();
    for (file, text) in sources {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = match Value::deserialize(doc) {
                Ok(Value::Null) => continue,
                Ok(v) => v,
                Err(e) => {
                    out.problems.push(Problem {
                        file: file.clone(),
                        object: format!("document {}", i + 1),
                        path: "-".into(),
                        message: format!("not YAML: {e}"),
                    });
                    // The rest of the stream cannot be trusted after a syntax error.
                    break;
                }
            };
            classify(file, i, value, &mut out);
        }
    }
    out
}

fn classify(file: &str, index: usize, value: Value, out: &mut Loaded) {
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    let name = value["metadata"]["name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("<document {}>", index + 1));
    let object = format!("{kind}/{name}");
    let problem = |path: &str, message: String| Problem {
        file: file.to_owned(),
        object: object.clone(),
        path: path.to_owned(),
        message,
    };
    let want = format!("{GROUP}/{VERSION}");
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    if !api_version.is_empty() && api_version.split('/').next() != Some(GROUP) {
        out.ignored.push(format!("{api_version} {object}"));
        return;
    }
    if api_version != want {
        let p = problem(
            "apiVersion",
            format!(
                "must be {want} (found {})",
                value["apiVersion"].as_str().unwrap_or("nothing")
            ),
        );
        out.problems.push(p);
        return;
    }
    match kind.as_str() {
        "VideoResizerConfig" => match typed::<VideoResizerConfig>(value) {
            Ok(config) => out.configs.push(FoundConfig {
                file: file.to_owned(),
                config,
            }),
            Err((path, message)) => out.problems.push(problem(&path, message)),
        },
        "Derivative" => match typed::<Derivative>(value) {
            Ok(d) => out.derivatives.push(d),
            Err((path, message)) => out.problems.push(problem(&path, message)),
        },
        other => {
            let p = problem(
                "kind",
                format!("must be VideoResizerConfig or Derivative (found {other:?})"),
            );
            out.problems.push(p);
        }
    }
}

/// Deserializes with the path of the first bad field (`spec.origins[0].sources`).
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "-".to_owned() } else { path };
        (path, e.into_inner().to_string())
    })
}

/// Loads the sources and renders every config with the derivatives found alongside it.
pub fn check(sources: &[(String, String)]) -> (Vec<Checked>, Vec<Problem>) {
    let loaded = load(sources);
    let checked = loaded
        .configs
        .into_iter()
        .map(|found| {
            let object = format!(
                "VideoResizerConfig/{}",
                found.config.metadata.name.as_deref().unwrap_or("<unnamed>")
            );
            let result = render(&found.config, &loaded.derivatives).map_err(|errs| {
                errs.0
                    .into_iter()
                    .map(|e| Problem {
                        file: found.file.clone(),
                        object: object.clone(),
                        path: e.path,
                        message: e.message,
                    })
                    .collect()
            });
            Checked {
                file: found.file,
                config: found.config,
                result,
            }
        })
        .collect();
    (checked, loaded.problems)
}

/// Reads `paths` (`-` is stdin) into `(name, text)` sources.
pub fn read_sources(paths: &[String]) -> Result<Vec<(String, String)>, crate::exit::CliError> {
    use std::io::Read;
    paths
        .iter()
        .map(|p| {
            let text = if p == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map(|_| s)
            } else {
                std::fs::read_to_string(p)
            };
            text.map(|t| (p.clone(), t)).map_err(|e| {
                crate::exit::CliError::new(crate::exit::FAILED, format!("{p}: cannot read: {e}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: videoresizer.io/v1alpha1
kind: VideoResizerConfig
metadata: {name: web}
spec:
  origins:
    - name: videos
      matcher: '^/videos/(?P<id>[a-z]+)\.mp4$'
      sources:
        - name: media
          kind: http
          http: {url: 'https://media.example.com/${id}.mp4'}
---
apiVersion: videoresizer.io/v1alpha1
kind: Derivative
metadata: {name: mobile}
spec: {config: web, width: 640, height: 360}
"#;

    fn src(text: &str) -> Vec<(String, String)> {
        vec![("a.yaml".to_owned(), text.to_owned())]
    }

    #[test]
    fn a_valid_config_renders_with_the_derivatives_beside_it() {
        let (checked, problems) = check(&src(CONFIG));
        assert!(problems.is_empty(), "{problems:?}");
        let r = checked[0].result.as_ref().expect("renders");
        assert!(r.config.derivatives.contains_key("mobile"));
    }

    #[test]
    fn every_render_error_is_reported_with_its_path_at_once() {
        let broken = CONFIG
            .replace(r"(?P<id>[a-z]+)", "(?P<id>[a-z")
            .replace("name: media", "name: ''");
        let (checked, _) = check(&src(&broken));
        let errs = checked[0].result.as_ref().expect_err("broken");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.len() >= 2, "{errs:?}");
        assert!(
            paths.iter().any(|p| p.starts_with("spec.origins[0]")),
            "{paths:?}"
        );
        assert!(errs.iter().all(|e| e.object == "VideoResizerConfig/web"));
    }

    #[test]
    fn a_type_error_names_the_field_path() {
        let bad = CONFIG.replace("  origins:\n", "  revisionHistoryLimit: many\n  origins:\n");
        let (_, problems) = check(&src(&bad));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].object, "VideoResizerConfig/web");
        assert_eq!(problems[0].path, "spec.revisionHistoryLimit");
        // A Derivative's preset fields are flattened into its spec: serde reports them at `spec`,
        // with the bad value in the message.
        let bad = CONFIG.replace("width: 640", "width: wide");
        let (_, problems) = check(&src(&bad));
        assert_eq!(problems[0].object, "Derivative/mobile");
        assert!(problems[0].path.starts_with("spec"), "{problems:?}");
        assert!(problems[0].message.contains("wide"), "{problems:?}");
    }

    #[test]
    fn other_kinds_and_versions_of_our_group_are_refused() {
        let (_, problems) = check(&src(
            "apiVersion: videoresizer.io/v1\nkind: Derivative\nmetadata: {name: x}\n---\napiVersion: videoresizer.io/v1alpha1\nkind: Pod\nmetadata: {name: y}\n---\norigins: []\n",
        ));
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["apiVersion", "kind", "apiVersion"]);
    }

    #[test]
    fn objects_of_other_groups_are_skipped_as_kustomize_build_emits_them() {
        let stream = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: media-origin}}\nstringData: {{token: x}}\n---\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n---\n\
             {CONFIG}"
        );
        let loaded = load(&src(&stream));
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(
            loaded.ignored,
            [
                "v1 Secret/media-origin",
                "kustomize.config.k8s.io/v1beta1 Kustomization/<document 2>"
            ]
        );
        assert_eq!(loaded.configs.len(), 1);
        let (checked, problems) = check(&src(&stream));
        assert!(problems.is_empty() && checked[0].result.is_ok());
    }
}
