//! Where each secret is read from on the platform host: the `[secrets]` configuration.
//!
//! ```toml
//! [secrets]
//! # Files tried in order for the built-in sources (first one that exists is used).
//! travis_yml = ["/usr/local/travis/etc/travis/config/travis.yml"]
//! # Set to false to drop the built-in `encryption-key` and `amqp-password` sources.
//! default_sources = true
//!
//! # Override a built-in source (fields not given keep their built-in value) ...
//! [secrets.sources.amqp-password]
//! command = ["docker", "exec", "travis", "cat", "/usr/local/travis/etc/travis/config/travis.yml"]
//!
//! # ... disable one ...
//! [secrets.sources.encryption-key]
//! enabled = false
//!
//! # ... or add another: `files` (first that exists) or `command` (its standard output),
//! # and `entry`, the dotted YAML path of the value (for a command, without `entry` the
//! # whole output less its final line break is the secret).
//! [secrets.sources.license-key]
//! files = ["/etc/travis/license.yml"]
//! entry = "license.key"
//! ```
//!
//! The built-in sources read the platform's `travis.yml` ([`DEFAULT_TRAVIS_YML`], first
//! existing file): `encryption-key` from the entry `encryption` (a value, or a mapping
//! holding it under `key`), and `amqp-password` from `amqp.password`.
//!
//! An entry's first part is looked for as a mapping key at any depth of the YAML
//! document; the remaining parts must follow directly below it. Scalars are taken as the
//! document spells them (no number or boolean conversion; block scalars lose their final
//! line break). An entry found in several places with different values is an error that
//! names the places (write the full path then, e.g. `production.encryption`).

use super::yaml::{find_entry, Place};
use super::SecretsError;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// Where the platform keeps `travis.yml`, tried in order: the path inside the platform
/// container (as the vendor documents it), then the same file under the host's
/// `/etc/travis`, which is what a snapshot saves.
pub const DEFAULT_TRAVIS_YML: [&str; 3] = [
    "/usr/local/travis/etc/travis/config/travis.yml",
    "/etc/travis/config/travis.yml",
    "/etc/travis/travis.yml",
];

/// The built-in secrets and their entries in `travis.yml`.
pub const BUILTIN_SOURCES: [(&str, &str); 2] = [
    ("encryption-key", "encryption"),
    ("amqp-password", "amqp.password"),
];

/// Longest secret name (object names must stay under 128 characters).
pub const MAX_NAME: usize = 64;

/// The `[secrets]` section of the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Include the built-in `encryption-key` and `amqp-password` sources.
    #[serde(default = "yes")]
    pub default_sources: bool,
    /// Files tried in order for the built-in sources (default [`DEFAULT_TRAVIS_YML`]).
    #[serde(default)]
    pub travis_yml: Option<Vec<PathBuf>>,
    /// Sources by secret name; a built-in name overrides the fields it gives.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
}

fn yes() -> bool {
    true
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            default_sources: true,
            travis_yml: None,
            sources: BTreeMap::new(),
        }
    }
}

/// One `[secrets.sources.NAME]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Files tried in order (`file = "..."` for a single one).
    #[serde(default, alias = "file", deserialize_with = "one_or_many")]
    pub files: Option<Vec<PathBuf>>,
    /// Program and arguments whose standard output holds the secret.
    pub command: Option<Vec<String>>,
    /// Dotted YAML path of the value.
    pub entry: Option<String>,
    /// `false` drops this source (e.g. a built-in one).
    pub enabled: Option<bool>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<PathBuf>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    }))
}

/// Where a resolved source reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The first of these files that exists.
    Files(Vec<PathBuf>),
    /// The standard output of this program.
    Command(Vec<String>),
}

/// A source with its defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub origin: Origin,
    pub entry: Option<String>,
}

/// Checks a secret name: lowercase letters and digits in parts joined by single `-`.
pub fn check_secret_name(name: &str) -> Result<(), SecretsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(SecretsError::Config(format!(
            "secret name {name:?}: use lowercase letters and digits, in parts joined by single `-`, at most {MAX_NAME} characters"
        )))
    }
}

impl SecretsConfig {
    /// The sources this configuration defines, in name order.
    pub fn sources(&self) -> Result<Vec<Source>, SecretsError> {
        let travis_yml: Vec<PathBuf> = match &self.travis_yml {
            Some(list) if list.is_empty() => {
                return Err(SecretsError::Config("`travis_yml` is an empty list".into()))
            }
            Some(list) => list.clone(),
            None => DEFAULT_TRAVIS_YML.iter().map(PathBuf::from).collect(),
        };
        let mut out = BTreeMap::new();
        if self.default_sources {
            for (name, entry) in BUILTIN_SOURCES {
                out.insert(
                    name.to_string(),
                    Source {
                        name: name.to_string(),
                        origin: Origin::Files(travis_yml.clone()),
                        entry: Some(entry.to_string()),
                    },
                );
            }
        }
        for (name, sc) in &self.sources {
            check_secret_name(name)?;
            let builtin = out.remove(name);
            if sc.enabled == Some(false) {
                continue;
            }
            let origin = match (&sc.files, &sc.command) {
                (Some(_), Some(_)) => {
                    return Err(SecretsError::Config(format!(
                        "[secrets.sources.{name}]: give `files` or `command`, not both"
                    )))
                }
                (Some(files), None) if files.is_empty() => {
                    return Err(SecretsError::Config(format!(
                        "[secrets.sources.{name}]: `files` is an empty list"
                    )))
                }
                (Some(files), None) => Origin::Files(files.clone()),
                (None, Some(cmd)) if cmd.is_empty() => {
                    return Err(SecretsError::Config(format!(
                        "[secrets.sources.{name}]: `command` is an empty list"
                    )))
                }
                (None, Some(cmd)) => Origin::Command(cmd.clone()),
                (None, None) => match &builtin {
                    Some(b) => b.origin.clone(),
                    None => {
                        return Err(SecretsError::Config(format!(
                            "[secrets.sources.{name}]: give `files` or `command`"
                        )))
                    }
                },
            };
            // A built-in's entry carries over to a new file, but not to a command (whose
            // output may be the bare secret) unless the table says so.
            let entry = match (&sc.entry, &builtin, &origin) {
                (Some(e), _, _) => Some(e.clone()),
                (None, Some(b), Origin::Files(_)) => b.entry.clone(),
                (None, Some(b), Origin::Command(_)) if sc.command.is_none() => b.entry.clone(),
                _ => None,
            };
            if let Some(e) = &entry {
                if e.is_empty() || e.split('.').any(str::is_empty) {
                    return Err(SecretsError::Config(format!(
                        "[secrets.sources.{name}]: `entry` {e:?} is not a dotted path such as \"amqp.password\""
                    )));
                }
            }
            if matches!(origin, Origin::Files(_)) && entry.is_none() {
                return Err(SecretsError::Config(format!(
                    "[secrets.sources.{name}]: a file source needs `entry`, the dotted YAML path of the value"
                )));
            }
            out.insert(
                name.clone(),
                Source {
                    name: name.clone(),
                    origin,
                    entry,
                },
            );
        }
        Ok(out.into_values().collect())
    }
}

/// A value read from a source, and a description of where (never the value). `Debug`
/// shows the value as `[REDACTED]`.
#[derive(Debug)]
pub struct Reading {
    pub value: SecretString,
    /// `FILE, entry ENTRY` or `command `...``.
    pub from: String,
}

/// Joins `path` under `root` (for checking a restored tree): `/etc/x` becomes `ROOT/etc/x`.
pub fn under_root(root: &Path, path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    root.join(rel)
}

impl Source {
    /// Reads the secret. `Ok(None)` when the source does not exist on this host (no file
    /// in the list exists, or the command's program is not installed); with `root`, files
    /// are looked for under that folder and commands are not run (`Ok(None)`).
    pub fn read(&self, root: Option<&Path>) -> Result<Option<Reading>, SecretsError> {
        match &self.origin {
            Origin::Files(files) => {
                for file in files {
                    let path = match root {
                        Some(r) => under_root(r, file),
                        None => file.clone(),
                    };
                    let mut f = match std::fs::File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(source) => {
                            return Err(SecretsError::Read {
                                name: self.name.clone(),
                                file: path,
                                source,
                            })
                        }
                    };
                    let mut bytes = Zeroizing::new(Vec::new());
                    f.read_to_end(&mut bytes)
                        .map_err(|source| SecretsError::Read {
                            name: self.name.clone(),
                            file: path.clone(),
                            source,
                        })?;
                    let shown = path.display().to_string();
                    let text = std::str::from_utf8(&bytes).map_err(|e| SecretsError::Yaml {
                        name: self.name.clone(),
                        file: shown.clone(),
                        line: 1 + bytes[..e.valid_up_to()]
                            .iter()
                            .filter(|&&b| b == b'\n')
                            .count(),
                        column: 0,
                        detail: "not UTF-8 text".into(),
                    })?;
                    let entry = self.entry.as_deref().expect("file sources have an entry");
                    let place = Place {
                        name: &self.name,
                        file: &shown,
                    };
                    let value = find_entry(text, entry, &place)?;
                    return Ok(Some(Reading {
                        value: SecretString::from(value.as_str()),
                        from: format!("{shown}, entry {entry}"),
                    }));
                }
                Ok(None)
            }
            Origin::Command(argv) => {
                if root.is_some() {
                    return Ok(None);
                }
                self.run_command(argv).map(Some).or_else(|e| match e {
                    SecretsError::CommandAbsent { .. } => Ok(None),
                    other => Err(other),
                })
            }
        }
    }

    /// Describes where the source reads from, for "not found" messages.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Files(files) => {
                let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                format!(
                    "{} (entry {})",
                    list.join(", "),
                    self.entry.as_deref().unwrap_or("?")
                )
            }
            Origin::Command(argv) => format!("command `{}`", argv.join(" ")),
        }
    }

    /// The error for a source that does not exist on this host.
    pub fn absent_error(&self, root: Option<&Path>) -> SecretsError {
        match &self.origin {
            Origin::Files(files) => SecretsError::SourceAbsent {
                name: self.name.clone(),
                tried: files
                    .iter()
                    .map(|f| match root {
                        Some(r) => under_root(r, f).display().to_string(),
                        None => f.display().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                entry: self.entry.clone().unwrap_or_default(),
            },
            Origin::Command(argv) => SecretsError::CommandAbsent {
                name: self.name.clone(),
                command: argv.join(" "),
            },
        }
    }

    fn run_command(&self, argv: &[String]) -> Result<Reading, SecretsError> {
        let shown = argv.join(" ");
        let err = |problem: String| SecretsError::Command {
            name: self.name.clone(),
            command: shown.clone(),
            problem,
        };
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        let output = match output {
            Ok(o) => o,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(SecretsError::CommandAbsent {
                    name: self.name.clone(),
                    command: shown,
                })
            }
            Err(e) => return Err(err(format!("could not be started: {e}"))),
        };
        let stdout = Zeroizing::new(output.stdout);
        // Error output may repeat what the program read: say how much there was, not what.
        let stderr = Zeroizing::new(output.stderr);
        if !output.status.success() {
            let lines = stderr
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            return Err(err(format!(
                "failed ({}); it wrote {lines} line{} of error output, not shown here because it may hold secrets: run it by hand to see them",
                output.status,
                if lines == 1 { "" } else { "s" }
            )));
        }
        let text = std::str::from_utf8(&stdout)
            .map_err(|_| err("wrote output that is not UTF-8 text".into()))?;
        let place_name = format!("output of `{shown}`");
        let value = match &self.entry {
            Some(entry) => find_entry(
                text,
                entry,
                &Place {
                    name: &self.name,
                    file: &place_name,
                },
            )?,
            None => {
                let v = text.strip_suffix('\n').unwrap_or(text);
                let v = v.strip_suffix('\r').unwrap_or(v);
                if v.is_empty() {
                    return Err(err("wrote nothing on its standard output".into()));
                }
                Zeroizing::new(v.to_string())
            }
        };
        Ok(Reading {
            value: SecretString::from(value.as_str()),
            from: match &self.entry {
                Some(e) => format!("command `{shown}`, entry {e}"),
                None => format!("command `{shown}`"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn cfg(text: &str) -> SecretsConfig {
        #[derive(Deserialize)]
        struct Wrap {
            secrets: SecretsConfig,
        }
        toml::from_str::<Wrap>(text).unwrap().secrets
    }

    #[test]
    fn defaults_and_overrides() {
        let d = SecretsConfig::default().sources().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "amqp-password");
        assert_eq!(d[1].entry.as_deref(), Some("encryption"));

        let c = cfg(r#"
            [secrets]
            travis_yml = ["/x/travis.yml"]
            [secrets.sources.amqp-password]
            enabled = false
            [secrets.sources.encryption-key]
            file = "/y/travis.yml"
            [secrets.sources.extra]
            command = ["echo", "hi"]
        "#);
        let s = c.sources().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "encryption-key");
        assert_eq!(s[0].origin, Origin::Files(vec!["/y/travis.yml".into()]));
        assert_eq!(s[0].entry.as_deref(), Some("encryption"));
        assert_eq!(
            s[1].origin,
            Origin::Command(vec!["echo".into(), "hi".into()])
        );
        assert_eq!(s[1].entry, None);
    }

    #[test]
    fn bad_configs_are_named() {
        let e = cfg("[secrets.sources.Bad]\nfile = \"/x\"\nentry = \"a\"\n")
            .sources()
            .unwrap_err();
        assert!(e.to_string().contains("Bad"), "{e}");
        let e = cfg("[secrets.sources.x]\nfile = \"/x\"\n")
            .sources()
            .unwrap_err();
        assert!(e.to_string().contains("entry"), "{e}");
        let e = cfg("[secrets.sources.x]\nfile = \"/x\"\ncommand = [\"a\"]\nentry = \"a\"\n")
            .sources()
            .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrap {
            secrets: SecretsConfig,
        }
        assert!(toml::from_str::<Wrap>("[secrets]\ntypo = 1\n").is_err());
    }

    #[test]
    fn commands_and_absent_sources() {
        let s = Source {
            name: "x".into(),
            origin: Origin::Command(vec!["printf".into(), "s3cret\\n".into()]),
            entry: None,
        };
        assert_eq!(
            s.read(None).unwrap().unwrap().value.expose_secret(),
            "s3cret"
        );
        let absent = Source {
            name: "x".into(),
            origin: Origin::Command(vec!["/nonexistent/program".into()]),
            entry: None,
        };
        assert!(absent.read(None).unwrap().is_none());
        let failing = Source {
            name: "x".into(),
            origin: Origin::Command(vec![
                "sh".into(),
                "-c".into(),
                "echo $((6*7))leak >&2; exit 3".into(),
            ]),
            entry: None,
        };
        let e = failing.read(None).unwrap_err().to_string();
        assert!(e.contains("1 line") && !e.contains("42leak"), "{e}");
        let files = Source {
            name: "x".into(),
            origin: Origin::Files(vec!["/nonexistent/a.yml".into()]),
            entry: Some("a".into()),
        };
        assert!(files.read(None).unwrap().is_none());
        let e = files.absent_error(None).to_string();
        assert!(
            e.contains("/nonexistent/a.yml") && e.contains("entry `a`"),
            "{e}"
        );
        assert_eq!(
            under_root(Path::new("/r"), Path::new("/etc/../x/y")),
            PathBuf::from("/r/etc/x/y")
        );
    }
}
