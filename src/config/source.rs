//! Raw configuration entries: what each source says before any typing.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::error::{ConfigError, Origin};

/// Largest configuration file read (the real ones are a few KiB).
const MAX_FILE_LEN: u64 = 4 * 1024 * 1024;

/// Deepest `${...}` nesting followed when resolving placeholders.
const MAX_PLACEHOLDER_DEPTH: usize = 16;

/// A value as a source wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawValue {
    /// No value (`key:` in YAML, `null`): treated as not set.
    Null,
    /// A scalar, as text.
    Scalar(String),
    /// A list of scalars.
    List(Vec<String>),
    /// Anything else (a list of maps, ...): only acceptable under keys we ignore.
    Complex,
}

/// One key/value pair from one source.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The dotted key it sets (`seata.store.mode`), in any relaxed spelling.
    pub(crate) key: String,
    /// The key, variable or flag as the source wrote it (for messages).
    pub(crate) written: String,
    /// The value.
    pub(crate) value: RawValue,
    /// The source.
    pub(crate) origin: Origin,
}

/// Reads a configuration file, refusing anything implausibly large.
pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    let read_err = |error| ConfigError::Read { path: path.to_path_buf(), error };
    let file = fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_FILE_LEN + 1).read_to_string(&mut text).map_err(read_err)?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_FILE_LEN {
        return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE_LEN} bytes"),
        )));
    }
    Ok(text)
}

/// Flattens a YAML document into dotted keys (`seata: {store: {mode: db}}` -> `seata.store.mode`).
pub(crate) fn yaml_entries(text: &str, origin: &Origin) -> Result<Vec<Entry>, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax { origin: origin.clone(), message };
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value =
            serde::Deserialize::deserialize(document).map_err(|e| syntax(format!("invalid YAML: {e}")))?;
        documents.push(value);
    }
    let mut value = match documents.len() {
        0 => return Ok(Vec::new()),
        1 => documents.remove(0),
        n => return Err(syntax(format!("{n} YAML documents; only one is supported (no Spring profiles)"))),
    };
    value.apply_merge().map_err(|e| syntax(format!("invalid YAML merge key: {e}")))?;
    let mut out = Vec::new();
    match value {
        serde_yaml::Value::Null => {}
        serde_yaml::Value::Mapping(map) => flatten_mapping("", map, origin, &mut out)?,
        _ => return Err(syntax("the top level must be a mapping of keys".to_owned())),
    }
    Ok(out)
}

fn flatten_mapping(
    prefix: &str,
    map: serde_yaml::Mapping,
    origin: &Origin,
    out: &mut Vec<Entry>,
) -> Result<(), ConfigError> {
    for (key, value) in map {
        let key = match key {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ConfigError::Syntax {
                    origin: origin.clone(),
                    message: format!("under `{prefix}`: keys must be plain text"),
                })
            }
        };
        let path = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        flatten_value(path, value, origin, out)?;
    }
    Ok(())
}

fn flatten_value(
    path: String,
    value: serde_yaml::Value,
    origin: &Origin,
    out: &mut Vec<Entry>,
) -> Result<(), ConfigError> {
    use serde_yaml::Value;
    let raw = match value {
        Value::Mapping(map) if map.is_empty() => RawValue::Null,
        Value::Mapping(map) => return flatten_mapping(&path, map, origin, out),
        Value::Tagged(tagged) => return flatten_value(path, tagged.value, origin, out),
        Value::Null => RawValue::Null,
        Value::Sequence(items) => {
            items.iter().map(yaml_scalar).collect::<Option<Vec<String>>>().map_or(RawValue::Complex, RawValue::List)
        }
        other => match yaml_scalar(&other) {
            Some(s) => RawValue::Scalar(s),
            None => RawValue::Complex,
        },
    };
    out.push(Entry { key: path.clone(), written: path, value: raw, origin: origin.clone() });
    Ok(())
}

fn yaml_scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Tagged(t) => yaml_scalar(&t.value),
        _ => None,
    }
}

/// Resolves Spring placeholders: `${NAME}` and `${NAME:default}`, nested in defaults
/// (`${a:${b}/x}`). `NAME` is looked up with `lookup` (environment, then configuration).
pub(crate) fn resolve_placeholders(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    resolve_depth(value, lookup, 0)
}

fn resolve_depth(value: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> Result<String, String> {
    if !value.contains("${") {
        return Ok(value.to_owned());
    }
    if depth > MAX_PLACEHOLDER_DEPTH {
        return Err(format!("placeholders nested deeper than {MAX_PLACEHOLDER_DEPTH} (a cycle?)"));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let body_start = start + 2;
        let Some(len) = matching_brace(&rest[body_start..]) else {
            return Err(format!("unterminated placeholder in `{value}`"));
        };
        let body = &rest[body_start..body_start + len];
        let (name, default) = match body.find(':') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let name = name.trim();
        let resolved = match (lookup(name), default) {
            (Some(found), _) => resolve_depth(&found, lookup, depth + 1)?,
            (None, Some(default)) => resolve_depth(default, lookup, depth + 1)?,
            (None, None) => {
                return Err(format!("placeholder `${{{name}}}`: no such environment variable or key, and no default"))
            }
        };
        out.push_str(&resolved);
        rest = &rest[body_start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of the text before the `}` that closes an already opened `${`.
fn matching_brace(text: &str) -> Option<usize> {
    let mut open = 1usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => open += 1,
            '}' => {
                open -= 1;
                if open == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Looks a placeholder name up in the environment the way Spring does: the exact name, then
/// upper case with `.` and `-` as `_` (`log.home` -> `LOG_HOME`).
pub(crate) fn env_lookup(env: &HashMap<String, String>, name: &str) -> Option<String> {
    env.get(name).or_else(|| env.get(&name.to_uppercase().replace(['.', '-'], "_"))).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".to_owned()),
            "LOOP" => Some("${LOOP}".to_owned()),
            "INNER" => Some("${HOME}/in".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn placeholders() {
        let r = |v: &str| resolve_placeholders(v, &lookup);
        assert_eq!(r("plain").unwrap(), "plain");
        assert_eq!(r("${HOME}").unwrap(), "/home/u");
        assert_eq!(r("a${NOPE:x}b").unwrap(), "axb");
        assert_eq!(r("${NOPE:}").unwrap(), "");
        assert_eq!(r("${log.home:${HOME}/logs/seata}").unwrap(), "/home/u/logs/seata");
        assert_eq!(r("${INNER}").unwrap(), "/home/u/in");
        assert_eq!(r("${NOPE:jdbc:mysql://h:1/db}").unwrap(), "jdbc:mysql://h:1/db");
        assert!(r("${NOPE}").unwrap_err().contains("NOPE"));
        assert!(r("${HOME").is_err());
        assert!(r("${LOOP}").is_err());
    }

    #[test]
    fn yaml_flattens_to_dotted_keys() {
        let text = "a:\n  b: 1\n  c: [x, y]\n  d:\n  e: {}\n  f: [{g: 1}]\n\"h.i\": true\n";
        let got: Vec<(String, RawValue)> =
            yaml_entries(text, &Origin::Embedded).unwrap().into_iter().map(|e| (e.written, e.value)).collect();
        assert_eq!(
            got,
            vec![
                ("a.b".to_owned(), RawValue::Scalar("1".to_owned())),
                ("a.c".to_owned(), RawValue::List(vec!["x".to_owned(), "y".to_owned()])),
                ("a.d".to_owned(), RawValue::Null),
                ("a.e".to_owned(), RawValue::Null),
                ("a.f".to_owned(), RawValue::Complex),
                ("h.i".to_owned(), RawValue::Scalar("true".to_owned())),
            ]
        );
    }

    #[test]
    fn yaml_errors() {
        for text in ["- a\n- b\n", "a: 1\n---\nb: 2\n", "a: [\n", "a: 1\na: 2\n"] {
            assert!(matches!(yaml_entries(text, &Origin::Embedded), Err(ConfigError::Syntax { .. })), "{text:?}");
        }
        assert!(yaml_entries("", &Origin::Embedded).unwrap().is_empty());
        assert!(yaml_entries("# only a comment\n", &Origin::Embedded).unwrap().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn yaml_junk_never_panics(text in "[a-z:\\-\\[\\]{}'\"&*!|> \\n#$]{0,80}") {
            let _ = yaml_entries(&text, &Origin::Embedded);
        }
    }
}
