//! Policy files: JSON, each holding one `NetworkPolicy` or an array of them,
//! found by glob patterns relative to the config file.

use std::path::{Path, PathBuf};

use policy_matcher::{Issue, NetworkPolicy, ValidPolicy};

/// Expands `patterns` (relative to `base`) into sorted, de-duplicated files.
pub(crate) fn expand(
    base: &Path,
    patterns: &[String],
    config: &str,
    issues: &mut Vec<Issue>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let path = format!("policy_files[{i}]");
        let full = base.join(pattern);
        let Some(full) = full.to_str() else {
            issues.push(Issue::error(path, pattern, "path is not UTF-8").in_file(config));
            continue;
        };
        let found: Vec<PathBuf> = match glob::glob(full) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(e) => {
                issues.push(Issue::error(path, pattern, format!("bad glob: {e}")).in_file(config));
                continue;
            }
        };
        if found.is_empty() {
            let literal = !pattern.contains(['*', '?', '[']);
            let issue = if literal {
                Issue::error(path, pattern, "no such file")
            } else {
                Issue::warning(path, pattern, "matches no file")
            };
            issues.push(issue.in_file(config));
        }
        files.extend(found);
    }
    files.sort();
    files.dedup();
    files
}

/// Reads and validates every policy of one file: each as written and validated.
pub(crate) fn read(file: &Path, issues: &mut Vec<Issue>) -> Vec<(NetworkPolicy, ValidPolicy)> {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            issues.push(Issue::error("", "", format!("cannot read: {e}")).in_file(&name));
            return Vec::new();
        }
    };
    parse(&text, &name, issues)
}

/// Parses and validates the policies in `text` (one object or an array).
pub(crate) fn parse(
    text: &str,
    name: &str,
    issues: &mut Vec<Issue>,
) -> Vec<(NetworkPolicy, ValidPolicy)> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = format!("line {} column {}", e.line(), e.column());
            issues.push(Issue::error(at, "", format!("invalid JSON: {e}")).in_file(name));
            return Vec::new();
        }
    };
    let items: Vec<(String, serde_json::Value)> = match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        other => vec![(String::new(), other)],
    };
    let mut out = Vec::with_capacity(items.len());
    for (prefix, value) in items {
        match serde_path_to_error::deserialize::<_, NetworkPolicy>(value) {
            Ok(p) => match p.validate(&prefix) {
                Ok(mut valid) => {
                    valid.origin = format!(
                        "{name}: {}",
                        if prefix.is_empty() { "policy" } else { &prefix }
                    );
                    out.push((p, valid));
                }
                Err(found) => issues.extend(found.into_iter().map(|i| i.in_file(name))),
            },
            Err(e) => {
                let field = e.path().to_string();
                let path = match (prefix.is_empty(), field.as_str()) {
                    (_, ".") => prefix.clone(),
                    (true, _) => field,
                    (false, _) => format!("{prefix}.{field}"),
                };
                issues.push(Issue::error(path, "", e.into_inner().to_string()).in_file(name));
            }
        }
    }
    out
}
