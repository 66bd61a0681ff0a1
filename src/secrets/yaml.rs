//! Finding one entry in a YAML document without letting its value leak.
//!
//! The document is parsed with `yaml-rust2`'s event parser into a small tree whose scalars
//! are kept as the exact text of the document (no type resolution: a key such as `12e45`
//! stays the string `12e45`, a password `0123` keeps its leading zero) and are wiped from
//! memory when the tree is dropped.
//!
//! An *entry* is a dotted path such as `encryption` or `amqp.password`. Its first part is
//! looked for as a mapping key at any depth; the remaining parts must follow directly
//! below it. The value found may be a scalar, or a mapping holding the scalar under `key`
//! (so both `encryption: SECRET` and `encryption:\n  key: SECRET` work). When the entry
//! appears more than once with different values the lookup fails and names the paths, so
//! the user can write the full path (`production.encryption`).

use super::SecretsError;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use zeroize::Zeroizing;

#[derive(Clone)]
enum Node {
    /// Scalar text exactly as the document spells it (after unquoting), and its style.
    Scalar(Zeroizing<String>, TScalarStyle),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(..) => "value",
            Node::Seq(_) => "list",
            Node::Map(_) => "mapping",
        }
    }

    fn key_text(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s.as_str()),
            _ => None,
        }
    }
}

enum Frame {
    Seq(Vec<Node>, usize),
    /// Entries so far, a key waiting for its value, and the anchor id.
    Map(Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
    /// An alias to an unknown anchor: reported after parsing.
    bad_alias: Option<Marker>,
}

impl Builder {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.push_node(Node::Scalar(Zeroizing::new(text), style), anchor)
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(Vec::new(), None, anchor)),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(items, anchor)) => self.push_node(Node::Seq(items), anchor),
                Some(Frame::Map(entries, _, anchor)) => self.push_node(Node::Map(entries), anchor),
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.push_node(node, 0),
                None => {
                    self.bad_alias.get_or_insert(mark);
                    self.push_node(
                        Node::Scalar(Zeroizing::new(String::new()), TScalarStyle::Plain),
                        0,
                    )
                }
            },
            _ => {}
        }
    }
}

/// What `find_entry` needs to name in its errors (never the value).
pub(crate) struct Place<'a> {
    pub name: &'a str,
    pub file: &'a str,
}

/// Parses `text` and returns the value of `entry`. Errors name `place` and the entry.
pub(crate) fn find_entry(
    text: &str,
    entry: &str,
    place: &Place<'_>,
) -> Result<Zeroizing<String>, SecretsError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(SecretsError::Yaml {
            name: place.name.into(),
            file: place.file.into(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
            detail: e.info().to_string(),
        });
    }
    if let Some(mark) = builder.bad_alias {
        return Err(SecretsError::Yaml {
            name: place.name.into(),
            file: place.file.into(),
            line: mark.line(),
            column: mark.col() + 1,
            detail: "alias to an unknown anchor".into(),
        });
    }
    let parts: Vec<&str> = entry.split('.').collect();
    let mut found: Vec<(String, &Node)> = Vec::new();
    for doc in &builder.docs {
        search(doc, &parts, &mut Vec::new(), &mut found);
    }
    let missing = || SecretsError::EntryMissing {
        name: place.name.into(),
        file: place.file.into(),
        entry: entry.into(),
    };
    if found.is_empty() {
        return Err(missing());
    }
    // Resolve each match to its value; several matches are fine when they agree.
    let mut values: Vec<(String, Zeroizing<String>)> = Vec::new();
    for (path, node) in &found {
        let (path, value) = match node {
            Node::Scalar(s, style) => (path.clone(), scalar_value(s, *style)),
            Node::Map(entries) => {
                let inner = entries.iter().find(|(k, _)| k.key_text() == Some("key"));
                match inner {
                    Some((_, Node::Scalar(s, style))) => {
                        (format!("{path}.key"), scalar_value(s, *style))
                    }
                    Some((_, other)) => {
                        return Err(SecretsError::EntryNotValue {
                            name: place.name.into(),
                            file: place.file.into(),
                            entry: format!("{path}.key"),
                            found: other.kind(),
                        })
                    }
                    None => {
                        return Err(SecretsError::EntryNotValue {
                            name: place.name.into(),
                            file: place.file.into(),
                            entry: path.clone(),
                            found: "mapping without a `key` entry",
                        })
                    }
                }
            }
            Node::Seq(_) => {
                return Err(SecretsError::EntryNotValue {
                    name: place.name.into(),
                    file: place.file.into(),
                    entry: path.clone(),
                    found: "list",
                })
            }
        };
        values.push((path, value));
    }
    let first = &values[0];
    if values.iter().any(|(_, v)| v.as_str() != first.1.as_str()) {
        return Err(SecretsError::EntryAmbiguous {
            name: place.name.into(),
            file: place.file.into(),
            entry: entry.into(),
            paths: values.iter().map(|(p, _)| p.clone()).collect(),
        });
    }
    let (path, value) = values.swap_remove(0);
    if value.is_empty() {
        return Err(SecretsError::EntryEmpty {
            name: place.name.into(),
            file: place.file.into(),
            entry: path,
        });
    }
    Ok(value)
}

/// The secret a scalar holds: plain `~`/`null` and empty scalars are empty; block scalars
/// lose the line break YAML keeps at their end; everything else is taken as written.
fn scalar_value(s: &str, style: TScalarStyle) -> Zeroizing<String> {
    match style {
        TScalarStyle::Plain if matches!(s, "~" | "null" | "Null" | "NULL") => {
            Zeroizing::new(String::new())
        }
        TScalarStyle::Literal | TScalarStyle::Folded => {
            Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string())
        }
        _ => Zeroizing::new(s.to_string()),
    }
}

/// Depth-first search for `parts` as a chain of mapping keys starting anywhere.
fn search<'n>(
    node: &'n Node,
    parts: &[&str],
    path: &mut Vec<String>,
    found: &mut Vec<(String, &'n Node)>,
) {
    match node {
        Node::Map(entries) => {
            for (k, v) in entries {
                let key = k.key_text().unwrap_or("?").to_string();
                if k.key_text() == Some(parts[0]) {
                    if let Some(hit) = follow(v, &parts[1..]) {
                        let mut full = path.clone();
                        full.extend(parts.iter().map(|p| p.to_string()));
                        found.push((full.join("."), hit));
                    }
                }
                path.push(key);
                search(v, parts, path, found);
                path.pop();
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                search(item, parts, path, found);
                path.pop();
            }
        }
        Node::Scalar(..) => {}
    }
}

fn follow<'n>(node: &'n Node, rest: &[&str]) -> Option<&'n Node> {
    let Some((first, rest)) = rest.split_first() else {
        return Some(node);
    };
    match node {
        Node::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.key_text() == Some(first))
            .and_then(|(_, v)| follow(v, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(text: &str, entry: &str) -> Result<String, SecretsError> {
        find_entry(
            text,
            entry,
            &Place {
                name: "test",
                file: "travis.yml",
            },
        )
        .map(|v| v.to_string())
    }

    #[test]
    fn nested_key_and_scalar_forms() {
        assert_eq!(
            get("encryption:\n  key: abc\n", "encryption").unwrap(),
            "abc"
        );
        assert_eq!(get("encryption: abc\n", "encryption").unwrap(), "abc");
        assert_eq!(
            get("production:\n  encryption:\n    key: 'a b'\n", "encryption").unwrap(),
            "a b"
        );
        assert_eq!(
            get("amqp:\n  password: \"p\\\"w\"\n", "amqp.password").unwrap(),
            "p\"w"
        );
    }

    #[test]
    fn scalars_keep_their_text() {
        assert_eq!(
            get("encryption:\n  key: 12e45\n", "encryption").unwrap(),
            "12e45"
        );
        assert_eq!(
            get("amqp:\n  password: 0123\n", "amqp.password").unwrap(),
            "0123"
        );
        assert_eq!(
            get("amqp:\n  password: |\n    multi\n", "amqp.password").unwrap(),
            "multi"
        );
    }

    #[test]
    fn missing_empty_ambiguous_and_bad_yaml_are_named() {
        let e = get("amqp:\n  user: x\n", "amqp.password")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("amqp.password") && e.contains("travis.yml"),
            "{e}"
        );
        let e = get("encryption:\n  key: ''\n", "encryption")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty") && e.contains("encryption.key"), "{e}");
        let e = get("encryption:\n  key:\n", "encryption")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = get("a:\n  encryption: s1\nb:\n  encryption: s2\n", "encryption")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.encryption") && e.contains("b.encryption"),
            "{e}"
        );
        assert!(!e.contains("s1") && !e.contains("s2"), "{e}");
        assert_eq!(
            get(
                "a:\n  encryption: s1\nb:\n  encryption: s2\n",
                "b.encryption"
            )
            .unwrap(),
            "s2"
        );
        let e = get("encryption:\n  key: [1, 2]\n", "encryption")
            .unwrap_err()
            .to_string();
        assert!(e.contains("list"), "{e}");
        let e = get("encryption: \"secretvalue\n", "encryption")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line") && !e.contains("secretvalue"), "{e}");
    }

    #[test]
    fn aliases_resolve() {
        let doc = "base: &b\n  key: fromanchor\nencryption: *b\n";
        assert_eq!(get(doc, "encryption").unwrap(), "fromanchor");
    }
}
