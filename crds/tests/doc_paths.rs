//! Documentation drift: every repository path and every in-repository Rust name that
//! `docs/ARCHITECTURE.md` and `README.md` put in code (backticks or fenced blocks) exists in the
//! tree, so a move or a rename that forgets the docs fails `cargo test`.
//!
//! What is checked:
//! * **Paths**: any token in code that starts with a top-level folder of the repository
//!   (`dataplane/…`, `operator/…`, `crds/…`, `cli/…`, `e2e/…`, `charts/…`, `docs/…`, …) must
//!   exist; a trailing `/` means a folder; `*` in the last component must match a file.
//!   Tokens with a placeholder (`<`, `$`, `{`, `…`) are skipped.
//! * **Rust names** (inline code only): `a::b::c` whose first segment is one of the workspace's
//!   crates (`vr_crds`, `vr_dataplane`, …) or a top-level module of one (`pipeline`, `plan`,
//!   `contract`, …) must resolve: modules to files, then an item declared in that module (or
//!   re-exported into it from a submodule), then methods, variants or fields declared in the
//!   crate. A lowercase first segment that is neither ours nor the standard library nor a
//!   dependency of the workspace fails (a module that moved: `runtime::Runtime` after
//!   `runtime` became `control::runtime`); one that is a dependency (`kube::runtime`) is not
//!   checked. `Type::member` is checked when `Type` is declared in the workspace.
//!
//! Standard library only; runs in well under a second.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The documents kept true by this test.
const DOCS: &[&str] = &["docs/ARCHITECTURE.md", "README.md"];

/// Top-level folders of the repository: a code token starting with `<one of these>/` is a path.
const TOP_DIRS: &[&str] = &[
    ".ci",
    "bench",
    "charts",
    "cli",
    "crds",
    "dataplane",
    "deploy",
    "docker",
    "docs",
    "e2e",
    "examples",
    "fuzz",
    "gitops",
    "operator",
    "scripts",
];

/// The workspace's library crates: name as used in Rust paths → source root.
const CRATES: &[(&str, &str)] = &[
    ("vr_crds", "crds/src"),
    ("vr_dataplane", "dataplane/src"),
    ("vr_operator", "operator/src"),
    ("vr_operator_core", "operator/core/src"),
    ("vr_verdict", "operator/verdict/src"),
    ("vr_cli", "cli/src"),
    ("vr_e2e", "e2e/src"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crds/ has a parent")
        .to_path_buf()
}

/// Code in a Markdown document: inline spans (outside fenced blocks) and the lines of fenced
/// blocks, each with the line it starts on.
#[derive(Debug, Default)]
struct Code {
    inline: Vec<(usize, String)>,
    fenced: Vec<(usize, String)>,
}

fn code_of(markdown: &str) -> Code {
    let mut code = Code::default();
    let mut fence: Option<String> = None;
    // Consecutive lines outside fences, parsed together (a span may cross a line break).
    let mut text = String::new();
    let mut text_start = 1;
    for (i, line) in markdown.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        let is_fence = marker.len() >= 3 && line.len() - trimmed.len() <= 3;
        match &fence {
            Some(open) => {
                if is_fence && marker.starts_with(open.as_str()) && trimmed.len() == marker.len() {
                    fence = None;
                    text_start = n + 1;
                } else {
                    code.fenced.push((n, line.to_owned()));
                }
            }
            None if is_fence => {
                spans(&text, text_start, &mut code.inline);
                text.clear();
                fence = Some(marker);
            }
            None => {
                if text.is_empty() {
                    text_start = n;
                }
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    spans(&text, text_start, &mut code.inline);
    code
}

/// The inline code spans of `text` (CommonMark: a run of N backticks closes at the next run of
/// exactly N), with their line numbers counted from `first_line`.
fn spans(text: &str, first_line: usize, out: &mut Vec<(usize, String)>) {
    let b = text.as_bytes();
    let run_at = |i: usize| b[i..].iter().take_while(|c| **c == b'`').count();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let open = run_at(i);
        let start = i + open;
        let mut j = start;
        let mut close = None;
        while j < b.len() {
            if b[j] == b'`' {
                let n = run_at(j);
                if n == open {
                    close = Some(j);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                let line = first_line + text[..i].matches('\n').count();
                let content = text[start..end].replace('\n', " ");
                out.push((line, content.trim().to_owned()));
                i = end + open;
            }
            None => i = start,
        }
    }
}

/// Tokens of `code` that name a repository path.
fn path_tokens(code: &str) -> Vec<String> {
    let separators = |c: char| c.is_whitespace() || "`'\"()[],;|=".contains(c);
    code.split(separators)
        .map(|t| t.trim_end_matches(['.', ':']))
        .filter(|t| {
            TOP_DIRS
                .iter()
                .any(|d| t.strip_prefix(d).is_some_and(|rest| rest.starts_with('/')))
        })
        .filter(|t| !t.contains(['<', '$', '{', '…']))
        .map(str::to_owned)
        .collect()
}

/// Whether `path` (relative to `root`) exists; a trailing `/` asks for a folder, `*` in the
/// last component matches any run of characters.
fn path_exists(root: &Path, path: &str) -> bool {
    if let Some(dir) = path.strip_suffix('/') {
        return root.join(dir).is_dir();
    }
    if !path.contains('*') {
        return root.join(path).exists();
    }
    let (dir, pattern) = path.rsplit_once('/').unwrap_or(("", path));
    if dir.contains('*') {
        return false;
    }
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|e| wildcard(pattern, &e.file_name().to_string_lossy()))
}

/// `*`-only glob matching.
fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (k, part) in parts.iter().enumerate() {
        if k == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// `a::b::c` (optionally followed by `()`), or `None` if the span is not a Rust path.
fn rust_path(span: &str) -> Option<Vec<&str>> {
    let s = span.strip_suffix("()").unwrap_or(span);
    let segs: Vec<&str> = s.split("::").collect();
    let ident = |x: &str| {
        let mut cs = x.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (segs.len() >= 2 && segs.iter().all(|x| ident(x))).then_some(segs)
}

/// Every `.rs` file of the workspace's crates with the names it declares, read once.
fn sources() -> &'static BTreeMap<PathBuf, HashSet<String>> {
    static SOURCES: OnceLock<BTreeMap<PathBuf, HashSet<String>>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let root = repo();
        let mut out = BTreeMap::new();
        let mut stack: Vec<PathBuf> = CRATES.iter().map(|(_, src)| root.join(src)).collect();
        while let Some(d) = stack.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = fs::read_to_string(&p).unwrap_or_default();
                    out.insert(p, declared_names(&text));
                }
            }
        }
        out
    })
}

/// Every `.rs` file under `dir` (recursively).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    sources()
        .keys()
        .filter(|p| p.starts_with(dir))
        .cloned()
        .collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s`, if any.
fn leading_ident(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    (end > 0 && !s.starts_with(|c: char| c.is_ascii_digit())).then(|| &s[..end])
}

/// The names `text` declares: items (`fn`, `struct`, `enum`, `trait`, `type`, `const`,
/// `static`, `mod`, `macro_rules!`), re-exports (every identifier of a `pub use`, also across
/// lines), enum variants (`Name,` `Name(` `Name {` `Name =`) and struct fields (`name: T`).
fn declared_names(text: &str) -> HashSet<String> {
    const KEYWORDS: &[&str] = &[
        "fn ",
        "struct ",
        "enum ",
        "trait ",
        "type ",
        "const ",
        "static ",
        "mod ",
        "macro_rules! ",
    ];
    let mut names = HashSet::new();
    let mut in_use = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if in_use || t.starts_with("pub use ") || t.starts_with("pub(crate) use ") {
            in_use = !t.contains(';');
            names.extend(
                t.split(|c: char| !is_ident_char(c))
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        for kw in KEYWORDS {
            for (at, _) in t.match_indices(kw) {
                let boundary = t[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !is_ident_char(c));
                if let Some(name) = leading_ident(&t[at + kw.len()..]).filter(|_| boundary) {
                    names.insert(name.to_owned());
                }
            }
        }
        let member = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if let Some(name) = leading_ident(member) {
            let rest = &member[name.len()..];
            let variant = name.starts_with(|c: char| c.is_ascii_uppercase())
                && (rest.is_empty()
                    || rest.starts_with([',', '('])
                    || rest.starts_with(" {")
                    || rest.starts_with(" ="));
            if variant || rest.starts_with(": ") {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn declared_in(files: &[PathBuf], name: &str) -> bool {
    files
        .iter()
        .any(|f| sources().get(f).is_some_and(|n| n.contains(name)))
}

/// Resolves `segs` inside the crate rooted at `root`: modules to files, then one item declared
/// in the module (or below it), then members declared anywhere in the crate.
fn resolve(root: &Path, segs: &[&str]) -> Result<(), String> {
    let crate_files = rust_files(root);
    let mut dir = root.to_path_buf();
    let mut module_files = crate_files.clone();
    for (i, seg) in segs.iter().enumerate() {
        let as_file = dir.join(format!("{seg}.rs"));
        let as_dir = dir.join(seg).join("mod.rs");
        if as_file.is_file() || as_dir.is_file() {
            let file = if as_file.is_file() { as_file } else { as_dir };
            dir = dir.join(seg);
            module_files = rust_files(&dir);
            if !module_files.contains(&file) {
                module_files.push(file);
            }
            continue;
        }
        if !declared_in(&module_files, seg) {
            return Err(format!("no module or item `{seg}`"));
        }
        for member in &segs[i + 1..] {
            if !declared_in(&crate_files, member) {
                return Err(format!("`{member}` is not declared in the crate"));
            }
        }
        return Ok(());
    }
    Ok(())
}

/// Crates that are not the workspace's: the standard library's and every dependency declared
/// in the root `Cargo.toml` (`[workspace.dependencies]`, `-` read as `_`).
fn external_crates(root: &Path) -> Vec<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let mut out: Vec<String> = ["std", "core", "alloc"].map(String::from).to_vec();
    let mut in_deps = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[workspace.dependencies]";
        } else if in_deps {
            if let Some((name, _)) = t.split_once('=') {
                out.push(name.trim().replace('-', "_"));
            }
        }
    }
    out
}

/// Checks one Rust path; `Ok(false)` when it is not the workspace's to check.
fn check_rust_path(root: &Path, segs: &[&str]) -> Result<bool, String> {
    if let Some((_, src)) = CRATES.iter().find(|(name, _)| *name == segs[0]) {
        return resolve(&root.join(src), &segs[1..]).map(|()| true);
    }
    let top_module = |src: &str| {
        let r = root.join(src);
        r.join(format!("{}.rs", segs[0])).is_file() || r.join(segs[0]).join("mod.rs").is_file()
    };
    let owners: Vec<&str> = CRATES
        .iter()
        .filter(|(_, src)| top_module(src))
        .map(|(_, src)| *src)
        .collect();
    if !owners.is_empty() {
        // Short forms (`pipeline::run`) name no crate: one crate that resolves is enough.
        let errors: Vec<String> = owners
            .iter()
            .filter_map(|src| resolve(&root.join(src), segs).err())
            .collect();
        return if errors.len() < owners.len() {
            Ok(true)
        } else {
            Err(errors.join("; "))
        };
    }
    if segs[0].starts_with(|c: char| c.is_ascii_lowercase()) {
        // A lowercase path that is neither a module of ours nor another crate: a module that
        // moved or a typo.
        return if external_crates(root).iter().any(|c| c == segs[0]) {
            Ok(false)
        } else {
            Err(format!("no crate or top-level module `{}`", segs[0]))
        };
    }
    if segs[0].starts_with(|c: char| c.is_ascii_uppercase()) {
        let crates: Vec<Vec<PathBuf>> = CRATES
            .iter()
            .map(|(_, src)| rust_files(&root.join(src)))
            .filter(|files| declared_in(files, segs[0]))
            .collect();
        if crates.is_empty() {
            return Ok(false);
        }
        for member in &segs[1..] {
            if !crates.iter().any(|files| declared_in(files, member)) {
                return Err(format!("`{member}` is not declared where `{}` is", segs[0]));
            }
        }
        return Ok(true);
    }
    Ok(false)
}

/// Every drift in `markdown` (named `doc` in messages), and how many paths and names were
/// checked.
fn drift(root: &Path, doc: &str, markdown: &str) -> (Vec<String>, usize, usize) {
    let code = code_of(markdown);
    let mut problems = Vec::new();
    let (mut paths, mut names) = (0, 0);
    for (line, text) in code.inline.iter().chain(&code.fenced) {
        for p in path_tokens(text) {
            paths += 1;
            if !path_exists(root, &p) {
                problems.push(format!("{doc}:{line}: path `{p}` does not exist"));
            }
        }
    }
    for (line, span) in &code.inline {
        let Some(segs) = rust_path(span) else {
            continue;
        };
        match check_rust_path(root, &segs) {
            Ok(true) => names += 1,
            Ok(false) => {}
            Err(why) => problems.push(format!("{doc}:{line}: `{span}`: {why}")),
        }
    }
    (problems, paths, names)
}

#[test]
fn documented_paths_and_names_exist_in_the_tree() {
    let root = repo();
    let mut problems = Vec::new();
    for doc in DOCS {
        let text = fs::read_to_string(root.join(doc)).expect("document readable");
        let (found, paths, names) = drift(&root, doc, &text);
        // An extractor that finds nothing would pass every document: each names plenty.
        assert!(
            paths >= 20,
            "{doc}: only {paths} paths found; is the extractor broken?"
        );
        if *doc == "docs/ARCHITECTURE.md" {
            assert!(names >= 20, "{doc}: only {names} Rust names checked");
        }
        problems.extend(found);
    }
    assert!(
        problems.is_empty(),
        "documentation names what the tree does not have (fix the document or the code):\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_moved_file_or_a_renamed_item_is_reported() {
    let root = repo();
    let doc = "See `dataplane/src/edge/service.rs` and `dataplane/src/edge/gone.rs`.\n\
               `pipeline::run` and `pipeline::no_such_stage`, `Cache::put` and `Cache::shove`,\n\
               `vr_crds::contract::revision_configmap_name` and `vr_crds::contract::nope`,\n\
               `kube::runtime::reflector` is someone else's, `runtime::Runtime` moved.\n\
               ```sh\nkubectl apply -f crds/videoresizer.io_crds.yaml -f deploy/missing.yaml\n```\n\
               `docker/*.Dockerfile` `docker/*.nothing` `operator/core/` `operator/nowhere/`\n";
    let (problems, paths, names) = drift(&root, "test.md", doc);
    let joined = problems.join("\n");
    for missing in [
        "dataplane/src/edge/gone.rs",
        "pipeline::no_such_stage",
        "Cache::shove",
        "vr_crds::contract::nope",
        "runtime::Runtime",
        "deploy/missing.yaml",
        "docker/*.nothing",
        "operator/nowhere/",
    ] {
        assert!(
            joined.contains(missing),
            "{missing} not reported:\n{joined}"
        );
    }
    assert_eq!(problems.len(), 8, "{joined}");
    assert_eq!(paths, 8);
    assert_eq!(names, 3);
}

#[test]
fn spans_pair_backtick_runs_and_skip_fences() {
    let code = code_of("a `x` b ``y ` z`` c\n```text\n`not a span`\n```\nd `e\nf`\n");
    let inline: Vec<&str> = code.inline.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(inline, ["x", "y ` z", "e f"]);
    assert_eq!(code.inline[2].0, 5);
    assert_eq!(code.fenced, [(3, "`not a span`".to_owned())]);
}

#[test]
fn path_tokens_skip_urls_placeholders_and_prose() {
    assert_eq!(
        path_tokens("helm install vr charts/video-resizer -f charts/x/values-prod.yaml."),
        ["charts/video-resizer", "charts/x/values-prod.yaml"]
    );
    assert!(path_tokens("http://host/docs/a image: video-resizer/dataplane:1").is_empty());
    assert!(path_tokens("docs/<name>.md crds/${x} operator").is_empty());
    assert!(wildcard("*.Dockerfile", "cli.Dockerfile"));
    assert!(!wildcard("*.Dockerfile", "cli.Dockerfile.bak"));
}

#[test]
fn declared_names_cover_items_reexports_variants_and_fields() {
    let text = "pub use inner::{\n    Alpha,\n    beta,\n};\npub(crate) async fn run(x: u8) {}\n\
                pub enum E {\n    One,\n    Two(u8),\n    Three { x: u8 },\n}\n\
                struct S {\n    pub field: u8,\n}\n// fn commented() {}\nlet call = go(1);\n";
    let names = declared_names(text);
    for n in [
        "Alpha", "beta", "run", "E", "One", "Two", "Three", "S", "field",
    ] {
        assert!(names.contains(n), "{n} not found in {names:?}");
    }
    for n in ["commented", "go", "call"] {
        assert!(!names.contains(n), "{n} wrongly declared");
    }
}
