//! Reading a config file (or the embedded default) with its policy files,
//! validating it, and compiling the policy state.

use std::path::{Path, PathBuf};

use policy_matcher::{Compiled, Inputs, Issue, NetworkPolicy};

use super::raw::RawConfig;
use super::validate::{self, Checker};
use super::{Config, policy_files};

/// The config `egress-proxy run` uses without `--config`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../deploy/config/default.toml");

/// A config that loaded: its settings, what it compiled from, the compiled
/// state, and the warnings found.
#[derive(Debug)]
pub struct Loaded {
    /// The validated settings.
    pub config: Config,
    /// What `state` was compiled from (the API merges its own into these).
    pub inputs: Inputs,
    /// The config's and policy files' policies as written, in the order of
    /// `inputs.policies` (the API serves them read-only), names defaulted to ids.
    pub file_policies: Vec<NetworkPolicy>,
    /// The compiled policy state.
    pub state: Compiled,
    /// Issues that did not refuse the config (e.g. dangling policy ids).
    pub warnings: Vec<Issue>,
}

/// Loads `path` and the policy files it names.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<Issue>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Issue::error("", "", format!("cannot read config: {e}")).in_file(&name)]
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut loaded = load_str(&text, &name, &base)?;
    loaded.config.file = Some(path.to_path_buf());
    Ok(loaded)
}

/// Loads config `text` named `name`; relative paths resolve against `base`.
pub fn load_str(text: &str, name: &str, base: &Path) -> Result<Loaded, Vec<Issue>> {
    let raw = parse_toml(text, name)?;
    let mut c = Checker {
        file: name,
        issues: Vec::new(),
    };
    let mut config = validate::settings(&raw, base, &mut c);
    config.policy_files = policy_files::expand(base, &raw.policy_files, name, &mut c.issues);
    let mut policies = Vec::new();
    let mut file_policies = Vec::new();
    for (i, p) in raw.policies.iter().enumerate() {
        match p.validate(&format!("policies[{i}]")) {
            Ok(mut valid) => {
                valid.origin = format!("{name}: policies[{i}]");
                policies.push(valid);
                file_policies.push(p.clone());
            }
            Err(found) => c.issues.extend(found.into_iter().map(|i| i.in_file(name))),
        }
    }
    for file in &config.policy_files {
        for (doc, valid) in policy_files::read(file, &mut c.issues) {
            policies.push(valid);
            file_policies.push(doc);
        }
    }
    for p in &mut file_policies {
        if p.name.is_empty() {
            p.name.clone_from(&p.id);
        }
    }
    let inputs = validate::inputs(&raw, policies, &mut c);
    let mut issues = c.issues;
    if issues.iter().any(Issue::is_error) {
        return Err(issues);
    }
    match Compiled::compile(&inputs) {
        Ok((state, warnings)) => {
            issues.extend(warnings.into_iter().map(|w| attribute(w, name)));
            Ok(Loaded {
                config,
                inputs,
                file_policies,
                state,
                warnings: issues,
            })
        }
        Err(found) => {
            issues.extend(found.into_iter().map(|w| attribute(w, name)));
            Err(issues)
        }
    }
}

/// Compile issues about bindings come from the config file itself.
fn attribute(issue: Issue, config: &str) -> Issue {
    if issue.file.is_empty() {
        issue.in_file(config)
    } else {
        issue
    }
}

fn parse_toml(text: &str, name: &str) -> Result<RawConfig, Vec<Issue>> {
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| vec![toml_issue(text, name, String::new(), &e)])?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![toml_issue(text, name, path, e.inner())]
    })
}

fn toml_issue(text: &str, name: &str, path: String, e: &toml::de::Error) -> Issue {
    let line = e
        .span()
        .and_then(|s| text.get(..s.start))
        .map(|before| before.matches('\n').count() + 1);
    let reason = match line {
        Some(line) => format!("line {line}: {}", e.message().trim_end()),
        None => e.message().trim_end().to_owned(),
    };
    Issue::error(path, "", reason).in_file(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, Vec<Issue>> {
        load_str(text, "test.toml", Path::new("."))
    }

    #[test]
    fn empty_config_takes_defaults() {
        let l = load("").unwrap();
        assert_eq!(l.config.mode, super::super::Mode::Enforce);
        assert!(l.config.listen.transparent.is_empty());
        assert!(l.config.upstream.deny_private);
    }

    #[test]
    fn embedded_default_loads() {
        let l = load(EMBEDDED_DEFAULT).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert!(l.state.binding_count() > 0);
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let issues = load("[[devboxes]]\nid = \"d\"\naddresss = [\"10.0.0.1\"]\n").unwrap_err();
        assert_eq!(issues.len(), 1);
        assert!(issues[0].path.starts_with("devboxes[0]"), "{}", issues[0]);
        assert!(issues[0].reason.contains("addresss"), "{}", issues[0]);
    }

    #[test]
    fn every_bad_value_is_reported() {
        let text = "mode = \"loud\"\n[listen]\nconnect = [\"nope\"]\n[upstream]\ndial = \"x\"\n[platform]\nmirrors = [\"a.*.b\"]\n";
        let issues = load(text).unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "mode",
                "listen.connect[0]",
                "upstream.dial",
                "platform.mirrors[0]"
            ]
        );
    }

    #[test]
    fn token_values_are_never_echoed() {
        let text = "[[api.tokens]]\naccount = \"a\"\ntoken_sha256 = \"secret-token\"\n";
        let issues = load(text).unwrap_err();
        assert!(!issues[0].to_string().contains("secret-token"));
    }
}
