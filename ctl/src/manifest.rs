//! Reading manifests: `-f FILE`, `-f DIR` (`-R` for sub-directories) and
//! `-f -` (stdin); multi-document YAML or JSON; `kind: List` expanded.
//!
//! Every document keeps where it came from (file and 1-based document
//! number) so errors can name it. Namespaces are filled in here. This module
//! must not talk to the server.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use meseta_schemas::registry::{by_kind, KindInfo};
use serde::Deserialize;
use serde_json::Value;

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The file (`-` for stdin).
    pub(crate) file: String,
    /// 1-based position of the document in the file.
    pub(crate) document: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} document {}", self.file, self.document)
    }
}

/// One object from a manifest, with its kind resolved and namespace set.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    /// Where it came from.
    pub(crate) origin: Origin,
    /// Its kind.
    pub(crate) kind: &'static KindInfo,
    /// `metadata.name`.
    pub(crate) name: String,
    /// `metadata.namespace` (defaulted) for namespaced kinds.
    pub(crate) namespace: Option<String>,
    /// The object as written (plus the namespace).
    pub(crate) object: Value,
}

impl Doc {
    /// `manifests/x.yaml document 2 (Task bad)`, for errors.
    pub(crate) fn label(&self) -> String {
        format!("{} ({} {})", self.origin, self.kind.kind, self.name)
    }
}

/// Where manifests come from: `-f FILE|DIR|-` (repeatable), `-R`, `-n`.
#[derive(Debug, clap::Args)]
pub(crate) struct Sources {
    /// Manifest file, directory, or `-` for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Also read sub-directories of directories given with -f.
    #[arg(short = 'R', long)]
    pub(crate) recursive: bool,
    /// Namespace for objects that name none (must match those that do).
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
}

impl Sources {
    /// Every document of every manifest named, in order.
    pub(crate) fn read(&self) -> anyhow::Result<Vec<Doc>> {
        read_all(&self.files, self.recursive, self.namespace.as_deref())
    }
}

/// Reads every document of `paths`. `namespace` is the `-n` flag, if given.
pub(crate) fn read_all(paths: &[PathBuf], recursive: bool, namespace: Option<&str>) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading manifests from stdin")?;
            docs.extend(parse("-", &text, namespace)?);
            continue;
        }
        for file in files_of(path, recursive)? {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            docs.extend(parse(&file.display().to_string(), &text, namespace)?);
        }
    }
    if docs.is_empty() {
        bail!("no objects found in {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    Ok(docs)
}

/// The manifest files of `path`: itself, or its `.yaml`/`.yml`/`.json` files (sorted).
fn files_of(path: &Path, recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).with_context(|| format!("the path {} does not exist", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading the directory {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                out.extend(files_of(&entry, true)?);
            }
        } else if matches!(entry.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Parses one file's documents.
pub(crate) fn parse(file: &str, text: &str, namespace: Option<&str>) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin { file: file.to_string(), document: i + 1 };
        let value = Value::deserialize(de).with_context(|| format!("{origin}: not valid YAML"))?;
        match value {
            Value::Null => continue,
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                for item in items {
                    docs.push(to_doc(origin.clone(), item, namespace)?);
                }
            }
            other => docs.push(to_doc(origin, other, namespace)?),
        }
    }
    Ok(docs)
}

fn to_doc(origin: Origin, mut object: Value, namespace: Option<&str>) -> anyhow::Result<Doc> {
    let Some(map) = object.as_object_mut() else {
        bail!("{origin}: expected an object with apiVersion, kind and metadata")
    };
    let kind_name = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    if kind_name.is_empty() {
        bail!("{origin}: kind: Required value: every object needs a kind, e.g. `kind: Task`");
    }
    let Some(kind) = by_kind(&kind_name) else {
        let known: Vec<_> = meseta_schemas::registry::kinds().iter().map(|k| k.kind).collect();
        bail!("{origin}: kind: Unsupported value: \"{kind_name}\": supported values: {}", known.join(", "));
    };
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else { bail!("{origin} ({kind_name}): metadata: must be an object") };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        bail!("{origin} ({kind_name}): metadata.name: Required value: every object needs a name");
    }
    let ns = if kind.namespaced {
        let written = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let ns = match (written, namespace) {
            (Some(w), Some(flag)) if w != flag => bail!(
                "{origin} ({kind_name} {name}): the namespace from the manifest \"{w}\" does not match the namespace \"{flag}\" given with -n"
            ),
            (Some(w), _) => w,
            (None, flag) => flag.unwrap_or(crate::cli::DEFAULT_NAMESPACE).to_string(),
        };
        meta.insert("namespace".into(), Value::String(ns.clone()));
        Some(ns)
    } else {
        None
    };
    Ok(Doc { origin, kind, name, namespace: ns, object })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_numbered_and_namespaced() {
        let text = "apiVersion: meseta.io/v1\nkind: Role\nmetadata: {name: web}\n---\n---\napiVersion: meseta.io/v1\nkind: Task\nmetadata: {name: t}\nspec: {}\n";
        let docs = parse("x.yaml", text, None).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].namespace, None);
        assert_eq!(docs[1].origin.document, 3);
        assert_eq!(docs[1].namespace.as_deref(), Some("default"));
        assert_eq!(docs[1].object["metadata"]["namespace"], "default");
        assert_eq!(docs[1].label(), "x.yaml document 3 (Task t)");
    }

    #[test]
    fn bad_documents_are_named() {
        let err = parse("x.yaml", "kind: Pod\nmetadata: {name: p}\n", None).unwrap_err().to_string();
        assert!(err.starts_with("x.yaml document 1: kind: Unsupported value: \"Pod\""), "{err}");
        let err = parse("x.yaml", "---\nkind: Task\nmetadata: {}\n", None).unwrap_err().to_string();
        assert!(err.contains("x.yaml document 1 (Task): metadata.name: Required value"), "{err}");
        let err = parse("y.yaml", "kind: Task\nmetadata: {name: a, namespace: b}\n", Some("c")).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
