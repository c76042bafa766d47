//! Which namespaces a project needs (pull) and builds (push), from its lockfiles.
//!
//! Looked for in the project directory, all of them, and their names united:
//!
//! 1. `npm-shrinkwrap.json`, else `package-lock.json` (npm's own precedence): every
//!    package, as its namespace ([`crate::local::namespace_of_package`]). Lockfile v2/v3
//!    `packages` (an alias's real `name` when given), else v1 `dependencies`, nested.
//! 2. `Cargo.lock`: every `[[package]]` name, and its crate-name form (`-` → `_`).
//!
//! **Pull** selects those namespaces; no lockfile, or no names in any, pulls everything.
//! **Push** selects the npm lockfile's packages and the Cargo workspace's members (`cargo
//! metadata --no-deps`, on `--manifest-path` or `./Cargo.toml`); when `cargo` is missing or
//! fails, a warning, and nothing is pushed for Cargo if `--manifest-path` was given, else
//! everything; with neither an npm lockfile nor a `Cargo.toml`, everything is pushed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::local::namespace_of_package;

/// A selection of namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every namespace.
    All,
    /// These namespaces only.
    Only(BTreeSet<String>),
}

impl Filter {
    /// Whether `namespace` is selected.
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(set) => set.contains(namespace),
        }
    }
}

/// A lockfile that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the lockfile `{}`: {reason}", path.display())]
pub struct LockfileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

fn read(path: &Path) -> Result<Option<String>, LockfileError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LockfileError {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The namespaces of a `Cargo.lock` (`None` when there is none).
///
/// # Errors
///
/// An unreadable or malformed file.
pub fn cargo_lock(path: &Path) -> Result<Option<BTreeSet<String>>, LockfileError> {
    let Some(text) = read(path)? else {
        return Ok(None);
    };
    let bad = |reason: String| LockfileError {
        path: path.to_owned(),
        reason,
    };
    let doc: toml::Table = toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
    let mut out = BTreeSet::new();
    if let Some(pkgs) = doc.get("package") {
        let pkgs = pkgs
            .as_array()
            .ok_or_else(|| bad("`package` is not an array of tables".to_owned()))?;
        for p in pkgs {
            if let Some(name) = p.get("name").and_then(|n| n.as_str()) {
                crate_names(name, &mut out);
            }
        }
    }
    Ok(Some(out))
}

fn crate_names(name: &str, out: &mut BTreeSet<String>) {
    for n in [name.to_owned(), name.replace('-', "_")] {
        if crate::layout::is_valid_namespace(&n) {
            out.insert(n);
        }
    }
}

/// The package name of a v1 `dependencies` entry (an alias `npm:real@1.0.0` names the real
/// package).
fn v1_name<'a>(name: &'a str, version: Option<&'a str>) -> &'a str {
    if let Some(spec) = version.and_then(|v| v.strip_prefix("npm:")) {
        if let Some(at) = spec.rfind('@').filter(|&at| at > 0) {
            return &spec[..at];
        }
    }
    name
}

fn v1_walk(deps: &serde_json::Map<String, serde_json::Value>, out: &mut BTreeSet<String>) {
    for (name, dep) in deps {
        let version = dep.get("version").and_then(|v| v.as_str());
        if let Some(ns) = namespace_of_package(v1_name(name, version)) {
            out.insert(ns);
        }
        if let Some(nested) = dep.get("dependencies").and_then(|d| d.as_object()) {
            v1_walk(nested, out);
        }
    }
}

/// The namespaces of an npm lockfile (`None` when there is none).
///
/// # Errors
///
/// An unreadable or malformed file.
pub fn npm_lock(path: &Path) -> Result<Option<BTreeSet<String>>, LockfileError> {
    let Some(text) = read(path)? else {
        return Ok(None);
    };
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| LockfileError {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = BTreeSet::new();
    if let Some(pkgs) = doc.get("packages").and_then(|p| p.as_object()) {
        for (path, p) in pkgs {
            let Some((_, tail)) = path.rsplit_once("node_modules/") else {
                continue; // the root project, or a workspace's own directory
            };
            if p.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            let name = p.get("name").and_then(|n| n.as_str()).unwrap_or(tail);
            if let Some(ns) = namespace_of_package(name) {
                out.insert(ns);
            }
        }
    } else if let Some(deps) = doc.get("dependencies").and_then(|d| d.as_object()) {
        v1_walk(deps, &mut out);
    }
    Ok(Some(out))
}

/// The npm lockfile of a project, by npm's precedence.
fn npm_lockfile(dir: &Path) -> Result<Option<(PathBuf, BTreeSet<String>)>, LockfileError> {
    for name in ["npm-shrinkwrap.json", "package-lock.json"] {
        let path = dir.join(name);
        if let Some(set) = npm_lock(&path)? {
            return Ok(Some((path, set)));
        }
    }
    Ok(None)
}

/// A filter and what was used to make it.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The filter.
    pub filter: Filter,
    /// One line per source (`Cargo.lock: 120 namespaces`), and warnings.
    pub notes: Vec<String>,
}

/// The pull filter of the project in `dir`.
///
/// # Errors
///
/// A lockfile that cannot be read or parsed.
pub fn pull_filter(dir: &Path) -> Result<Selection, LockfileError> {
    let mut names = BTreeSet::new();
    let mut notes = Vec::new();
    if let Some((path, set)) = npm_lockfile(dir)? {
        notes.push(format!("{}: {} namespaces", path.display(), set.len()));
        names.extend(set);
    }
    let cargo = dir.join("Cargo.lock");
    if let Some(set) = cargo_lock(&cargo)? {
        notes.push(format!("{}: {} namespaces", cargo.display(), set.len()));
        names.extend(set);
    }
    let filter = if names.is_empty() {
        notes.push("no lockfile names: pulling every namespace".to_owned());
        Filter::All
    } else {
        Filter::Only(names)
    };
    Ok(Selection { filter, notes })
}

/// The names of a Cargo workspace's members, from `cargo metadata --no-deps`.
///
/// # Errors
///
/// `cargo` missing or failing, or output that does not parse; the text says which.
pub fn workspace_members(manifest_path: &Path) -> Result<Vec<String>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest_path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(format!("cargo metadata failed: {line}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed something else than JSON: {e}"))?;
    Ok(v.get("packages")
        .and_then(|p| p.as_array())
        .map(|pkgs| {
            pkgs.iter()
                .filter_map(|p| p.get("name")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The push filter of the project in `dir` (`manifest_path`: `--manifest-path`).
///
/// # Errors
///
/// An npm lockfile that cannot be read or parsed.
pub fn push_filter(dir: &Path, manifest_path: Option<&Path>) -> Result<Selection, LockfileError> {
    let mut notes = Vec::new();
    let mut names = BTreeSet::new();
    let mut any = false;
    let mut everything = false;
    if let Some((path, set)) = npm_lockfile(dir)? {
        notes.push(format!("{}: {} namespaces", path.display(), set.len()));
        names.extend(set);
        any = true;
    }
    let cargo_toml = dir.join("Cargo.toml");
    let manifest = manifest_path
        .map(Path::to_owned)
        .or_else(|| cargo_toml.is_file().then_some(cargo_toml));
    if let Some(manifest) = manifest {
        any = true;
        match workspace_members(&manifest) {
            Ok(members) => {
                notes.push(format!(
                    "{}: {} workspace members",
                    manifest.display(),
                    members.len()
                ));
                for m in members {
                    crate_names(&m, &mut names);
                }
            }
            Err(e) if manifest_path.is_some() => {
                notes.push(format!(
                    "warning: {e}; pushing nothing for --manifest-path {}",
                    manifest.display()
                ));
            }
            Err(e) => {
                notes.push(format!("warning: {e}; pushing every namespace"));
                everything = true;
            }
        }
    }
    let filter = if everything || !any {
        if !any {
            notes.push("no npm lockfile and no Cargo.toml: pushing every namespace".to_owned());
        }
        Filter::All
    } else {
        Filter::Only(names)
    };
    Ok(Selection { filter, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_lock_names_and_crate_forms() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Cargo.lock");
        std::fs::write(
            &p,
            "version = 4\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"tokio-util\"\nversion = \"0.7.0\"\n",
        )
        .unwrap();
        let set = cargo_lock(&p).unwrap().unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["serde", "tokio-util", "tokio_util"]
        );
        assert_eq!(cargo_lock(&d.path().join("none")).unwrap(), None);
        std::fs::write(&p, "[[package]\nname=").unwrap();
        let e = cargo_lock(&p).unwrap_err();
        assert!(e.to_string().contains("Cargo.lock"), "{e}");
    }

    #[test]
    fn npm_lock_v3_packages_and_aliases() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("package-lock.json");
        std::fs::write(
            &p,
            r#"{"lockfileVersion":3,"packages":{
                "":{"name":"app"},
                "node_modules/ms":{"version":"2.1.3"},
                "node_modules/@babel/core":{"version":"7.0.0"},
                "node_modules/a/node_modules/b":{"version":"1.0.0"},
                "node_modules/alias":{"name":"real-pkg","version":"1.0.0"},
                "node_modules/ws-link":{"link":true,"resolved":"packages/x"},
                "packages/x":{"name":"x"}}}"#,
        )
        .unwrap();
        let set = npm_lock(&p).unwrap().unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["b", "babel__core", "ms", "real-pkg"]
        );
    }

    #[test]
    fn npm_lock_v1_dependencies() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("package-lock.json");
        std::fs::write(
            &p,
            r#"{"lockfileVersion":1,"dependencies":{
                "ms":{"version":"2.0.0"},
                "debug":{"version":"2.6.9","dependencies":{"ms":{"version":"2.0.0"}}},
                "al":{"version":"npm:@scope/real@1.0.0"}}}"#,
        )
        .unwrap();
        let set = npm_lock(&p).unwrap().unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["debug", "ms", "scope__real"]
        );
    }

    #[test]
    fn pull_without_lockfiles_takes_everything() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(pull_filter(d.path()).unwrap().filter, Filter::All);
        std::fs::write(d.path().join("Cargo.lock"), "version = 4\n").unwrap();
        assert_eq!(pull_filter(d.path()).unwrap().filter, Filter::All);
    }

    #[test]
    fn shrinkwrap_wins_over_package_lock() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("package-lock.json"),
            r#"{"packages":{"node_modules/a":{}}}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("npm-shrinkwrap.json"),
            r#"{"packages":{"node_modules/b":{}}}"#,
        )
        .unwrap();
        let Filter::Only(set) = pull_filter(d.path()).unwrap().filter else {
            panic!("a filter")
        };
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn push_without_project_takes_everything() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(push_filter(d.path(), None).unwrap().filter, Filter::All);
    }

    #[test]
    fn push_with_a_failing_manifest_path_takes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let sel = push_filter(d.path(), Some(&d.path().join("missing/Cargo.toml"))).unwrap();
        assert_eq!(sel.filter, Filter::Only(BTreeSet::new()));
        assert!(
            sel.notes.iter().any(|n| n.starts_with("warning:")),
            "{:?}",
            sel.notes
        );
    }

    #[test]
    fn push_with_a_failing_cargo_toml_takes_everything() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Cargo.toml"), "this is not toml [").unwrap();
        let sel = push_filter(d.path(), None).unwrap();
        assert_eq!(sel.filter, Filter::All);
        assert!(
            sel.notes.iter().any(|n| n.starts_with("warning:")),
            "{:?}",
            sel.notes
        );
    }
}
