//! Reading a `DcsTaskQuery` manifest from a file, as strictly as `kubectl apply` would.
//!
//! The apiserver prunes unknown fields silently on old servers; a typo such as `waitfor:` would
//! then turn a wait into a plain query without a word. The CLI refuses unknown fields instead,
//! naming the field and suggesting the right spelling.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use kube::CustomResourceExt;

use crate::api::DcsTaskQuery;

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML or JSON: {detail}")]
    Syntax { path: String, detail: String },
    #[error(
        "{path}: expected apiVersion dcs.hwcloud.dev/v1alpha1 and kind DcsTaskQuery, found {found}"
    )]
    WrongKind { path: String, found: String },
    #[error("{path}: {detail}")]
    Shape { path: String, detail: String },
    #[error("{path}: unknown field {}", .fields.join(", "))]
    UnknownFields { path: String, fields: Vec<String> },
}

/// Reads and parses the manifest at `path` (`-` for standard input).
pub fn read_manifest(path: &Path) -> Result<DcsTaskQuery, InputError> {
    let shown = path.display().to_string();
    let text = if shown == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|source| InputError::Read {
                path: shown.clone(),
                source,
            })?
    } else {
        std::fs::read_to_string(path).map_err(|source| InputError::Read {
            path: shown.clone(),
            source,
        })?
    };
    parse_manifest(&text, &shown)
}

/// Parses manifest text; `origin` names it in errors.
pub fn parse_manifest(text: &str, origin: &str) -> Result<DcsTaskQuery, InputError> {
    let raw: Value = serde_yaml_ng::from_str(text).map_err(|error| InputError::Syntax {
        path: origin.to_string(),
        detail: error.to_string(),
    })?;
    let api_version = raw.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = raw.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "dcs.hwcloud.dev/v1alpha1" || kind != "DcsTaskQuery" {
        return Err(InputError::WrongKind {
            path: origin.to_string(),
            found: format!("apiVersion {api_version:?}, kind {kind:?}"),
        });
    }
    let query: DcsTaskQuery =
        serde_json::from_value(raw.clone()).map_err(|error| InputError::Shape {
            path: origin.to_string(),
            detail: error.to_string(),
        })?;
    let mut unknown = Vec::new();
    if let (Some(input), Some(schema)) = (raw.get("spec"), spec_schema()) {
        find_unknown(input, &schema, "spec", &mut unknown);
    }
    if unknown.is_empty() {
        Ok(query)
    } else {
        Err(InputError::UnknownFields {
            path: origin.to_string(),
            fields: unknown,
        })
    }
}

/// The CRD's schema for `spec`: the same definition of "known field" the apiserver uses.
fn spec_schema() -> Option<Value> {
    let crd = DcsTaskQuery::crd();
    let schema = crd
        .spec
        .versions
        .first()?
        .schema
        .as_ref()?
        .open_api_v3_schema
        .as_ref()?;
    serde_json::to_value(schema)
        .ok()?
        .pointer("/properties/spec")
        .cloned()
}

/// Keys in `input` (with a value) that the schema does not define, with a spelling hint.
fn find_unknown(input: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    match input {
        Value::Object(fields) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (key, value) in fields {
                let field = format!("{path}.{key}");
                match properties.get(key) {
                    Some(property) => find_unknown(value, property, &field, out),
                    None if is_empty(value) => {}
                    None => {
                        let hint = properties
                            .keys()
                            .find(|candidate| candidate.eq_ignore_ascii_case(key))
                            .map(|candidate| format!(" (did you mean {path}.{candidate}?)"))
                            .unwrap_or_default();
                        out.push(format!("{field}{hint}"));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    find_unknown(item, item_schema, &format!("{path}[{index}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "apiVersion: dcs.hwcloud.dev/v1alpha1\nkind: DcsTaskQuery\nmetadata:\n  name: q\n";

    #[test]
    fn parses_a_manifest_with_defaults() {
        let query = parse_manifest(
            &format!("{HEADER}spec:\n  region: cn-north-4\n  filter: {{}}\n"),
            "q.yaml",
        )
        .unwrap();
        assert_eq!(query.spec.region, "cn-north-4");
        assert!(query.spec.query.all_pages);
    }

    #[test]
    fn unknown_fields_are_named_with_a_suggestion() {
        let text = format!(
            "{HEADER}spec:\n  region: cn-north-4\n  waitfor:\n    name: x\n  query:\n    limt: 5\n"
        );
        let error = parse_manifest(&text, "q.yaml").unwrap_err().to_string();
        assert!(
            error.contains("spec.waitfor (did you mean spec.waitFor?)"),
            "{error}"
        );
        assert!(error.contains("spec.query.limt"), "{error}");
    }

    #[test]
    fn wrong_kind_and_bad_types() {
        let error = parse_manifest("apiVersion: v1\nkind: ConfigMap\n", "x").unwrap_err();
        assert!(matches!(error, InputError::WrongKind { .. }));
        let error = parse_manifest(
            &format!("{HEADER}spec:\n  region: cn-north-4\n  maxTasks: lots\n"),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("invalid type"), "{error}");
        let error = parse_manifest(&format!("{HEADER}spec: {{}}\n"), "x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing field `region`"), "{error}");
    }
}
