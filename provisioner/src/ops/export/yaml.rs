//! A block-style YAML writer that YAML 1.1 parsers (docker-compose 1.29
//! reads its files with PyYAML) and YAML 1.2 parsers read alike. Common
//! YAML serializers write for YAML 1.2 and leave `on`, `yes`, `1:30`,
//! `2001-01-01` or `=` unquoted, which YAML 1.1 reads as a boolean, a
//! base-60 number, a date or a value tag. Here a string is written plain
//! only when it is an identifier-like word no YAML version reads as
//! anything but a string, and otherwise double-quoted with JSON's escapes
//! (which both versions share). The structure and key order come from
//! serde through `serde_norway::Value`.

use std::fmt::Write;

use serde_norway::Value;

/// Whether `s` reads as the same string in YAML 1.1 and 1.2 unquoted.
fn plain(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
    );
    first_ok && rest_ok && !special
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            // Rust writes finite floats in plain decimals, never exponents.
            (_, _, Some(f)) if f.is_finite() => f.to_string(),
            _ => n.to_string(),
        },
        Value::String(s) if plain(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).expect("a string serializes"),
        // Not used by the compose file; written as their text.
        other => serde_json::to_string(&format!("{other:?}")).expect("a string serializes"),
    }
}

/// A collection's inline form when it is empty, else `None`.
fn empty(value: &Value) -> Option<&'static str> {
    match value {
        Value::Mapping(m) if m.is_empty() => Some("{}"),
        Value::Sequence(s) if s.is_empty() => Some("[]"),
        _ => None,
    }
}

fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(t) => untag(&t.value),
        v => v,
    }
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Mapping(_) | Value::Sequence(_)) && empty(value).is_none()
}

/// Writes a non-empty mapping or sequence, each line at `indent`.
fn block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                let value = untag(value);
                let key = scalar(untag(key));
                if is_block(value) {
                    let _ = writeln!(out, "{pad}{key}:");
                    block(out, value, indent + 2);
                } else {
                    let text = empty(value).map_or_else(|| scalar(value), str::to_owned);
                    let _ = writeln!(out, "{pad}{key}: {text}");
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                let item = untag(item);
                if is_block(item) {
                    // The item's block, its first line's indent made "- ".
                    let mut inner = String::new();
                    block(&mut inner, item, indent + 2);
                    let _ = write!(out, "{pad}- {}", &inner[indent + 2..]);
                } else {
                    let text = empty(item).map_or_else(|| scalar(item), str::to_owned);
                    let _ = writeln!(out, "{pad}- {text}");
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other));
        }
    }
}

/// The YAML text of `value`.
pub fn to_string(value: &Value) -> String {
    let value = untag(value);
    let mut out = String::new();
    match empty(value) {
        Some(text) => out.push_str(text),
        None if is_block(value) => block(&mut out, value, 0),
        None => out.push_str(&scalar(value)),
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(json: serde_json::Value) -> String {
        to_string(&serde_norway::to_value(json).unwrap())
    }

    #[test]
    fn what_yaml_1_1_reads_otherwise_is_quoted() {
        for s in [
            "on",
            "Off",
            "yes",
            "N",
            "y",
            "true",
            "NULL",
            "1:30",
            "22:22",
            "0777",
            "1_000",
            "2001-01-01",
            "=",
            "<<",
            "~",
            "",
            "-",
            "a: b",
            "#x",
            "+1",
            ".inf",
            "1e3",
            "provision/ingest:dev",
            "two words",
        ] {
            let text = yaml(serde_json::json!({ "k": s }));
            assert_eq!(
                text,
                format!("k: {}\n", serde_json::to_string(s).unwrap()),
                "{s}"
            );
        }
        for s in [
            "text",
            "unless-stopped",
            "json-file",
            "io.provision.tenant",
            "/x",
        ] {
            let expected = if s.starts_with('/') {
                format!("k: \"{s}\"\n")
            } else {
                format!("k: {s}\n")
            };
            assert_eq!(yaml(serde_json::json!({ "k": s })), expected);
        }
    }

    #[test]
    fn blocks_nest_and_empty_collections_are_inline() {
        let text = yaml(serde_json::json!({
            "a": { "b": [1, 2.5, true, null], "c": {}, "d": [] },
            "e": [{ "f": "g", "h": ["i"] }, ["j"]],
            "on": "x\ny",
        }));
        assert_eq!(
            text,
            "a:\n  b:\n    - 1\n    - 2.5\n    - true\n    - null\n  c: {}\n  d: []\n\
             e:\n  - f: g\n    h:\n      - i\n  - - j\n\"on\": \"x\\ny\"\n"
        );
        let back: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(back["e"][0]["h"][0], "i");
        assert_eq!(back["on"], "x\ny");
    }
}
