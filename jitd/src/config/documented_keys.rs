//! The keys jitd.toml accepts are the keys its documentation lists, both ways: jitd.toml(5)
//! (packaging/man/jitd.toml.5) has every key of every table, the README's configuration table
//! and the commented packaging/jitd.toml every top-level one, and none of them names a key the
//! parser would refuse.
//!
//! The accepted keys come from the parser itself, not from a list kept by hand: serde's derive
//! hands the names of a struct's fields to `Deserializer::deserialize_struct`, so a deserializer
//! that records them ([`Probe`]) reads them off `Config` — renames, skipped fields and
//! `deny_unknown_fields` included. Nested tables (`[[role]]`, `[[role.auto_approve]]`,
//! `[[notifier]]`) are reached by feeding the probe one field at a time down a path.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::value::Error;
use serde::de::{
    DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use super::config_file::Config;
use super::policy_file::DropIn;

/// A deserializer that walks down `rest` (field names) and records the field list of the
/// struct it ends on. Anything that is not a struct on the way is a leaf: it fails, which ends
/// the walk (the result is thrown away; only what was recorded counts).
struct Probe<'p> {
    rest: &'p [&'static str],
    seen: &'p RefCell<Option<&'static [&'static str]>>,
}

impl<'de> serde::Deserializer<'de> for Probe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(serde::de::Error::custom("a leaf"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// An array of tables (`Vec<RoleSpec>`) holds one element: the probe again.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(One(Some(self)))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // toml's `Spanned<T>` (a value with its position in the file) is a struct to serde,
        // named `$__serde_spanned_private_Spanned`; it wraps a value, not a table.
        if name.starts_with("$__") {
            return Err(serde::de::Error::custom("a leaf"));
        }
        match self.rest.split_first() {
            None => {
                *self.seen.borrow_mut() = Some(fields);
                Err(serde::de::Error::custom("recorded"))
            }
            Some((field, rest)) => visitor.visit_map(Entry {
                key: Some(field),
                value: Some(Probe {
                    rest,
                    seen: self.seen,
                }),
            }),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map enum identifier ignored_any
    }
}

struct One<'p>(Option<Probe<'p>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|p| seed.deserialize(p)).transpose()
    }
}

/// A table with one key, whose value is the probe for the rest of the path.
struct Entry<'p> {
    key: Option<&'static str>,
    value: Option<Probe<'p>>,
}

impl<'de> MapAccess<'de> for Entry<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        self.key
            .take()
            .map(|k| seed.deserialize(IntoDeserializer::<Error>::into_deserializer(k)))
            .transpose()
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(p) => seed.deserialize(p),
            None => Err(serde::de::Error::custom("no value")),
        }
    }
}

/// The fields of the table at `path` under `T`, or None when `path` ends on a plain value.
fn fields_at<T: DeserializeOwned>(path: &[&'static str]) -> Option<&'static [&'static str]> {
    let seen = RefCell::new(None);
    let _ = T::deserialize(Probe {
        rest: path,
        seen: &seen,
    });
    seen.into_inner()
}

/// Every table `T` accepts, by dotted path ("" for the top level, "role.auto_approve"), with
/// its plain keys (those that are not tables themselves).
fn accepted_keys<T: DeserializeOwned>() -> BTreeMap<String, BTreeSet<String>> {
    let mut tables = BTreeMap::new();
    let mut todo: Vec<Vec<&'static str>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let fields = fields_at::<T>(&path).expect("a table");
        let mut keys = BTreeSet::new();
        for field in fields {
            let mut below = path.clone();
            below.push(field);
            if fields_at::<T>(&below).is_some() {
                todo.push(below);
            } else {
                keys.insert(field.to_string());
            }
        }
        tables.insert(path.join("."), keys);
    }
    tables
}

fn repo_file(relative: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (PathBuf::from(relative), text)
}

/// The keys jitd.toml(5) documents: each `.TP` entry's first word inside a
/// `.\" keys: TABLE` … `.\" end` region ("top" is the top level).
fn man_page_keys(page: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table: Option<String> = None;
    let mut after_tp = false;
    for line in page.lines() {
        if let Some(name) = line.strip_prefix(".\\\" keys: ") {
            let name = if name == "top" { "" } else { name };
            table = Some(name.to_string());
            tables.entry(name.to_string()).or_default();
        } else if line == ".\\\" end" {
            table = None;
        } else if let Some(t) = &table {
            if after_tp {
                let key = line
                    .split_once(' ')
                    .map(|(_, rest)| rest.trim_start_matches('"'))
                    .unwrap_or_default();
                let key: String = key
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                assert!(
                    !key.is_empty(),
                    "jitd.toml.5: a .TP entry without a key: {line:?}"
                );
                tables.entry(t.clone()).or_default().insert(key);
            }
            after_tp = line == ".TP";
        }
    }
    tables
}

/// The keys named in the first column of the README's table under "## Configuration".
fn readme_keys(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a ## Configuration section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// The keys packaging/jitd.toml sets or shows commented out (`#key = …`), by table.
fn sample_config_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table = String::new();
    for line in text.lines() {
        // `#key = …` is a key shown commented out; `# text` is prose.
        let line = line.strip_prefix('#').unwrap_or(line);
        if line.starts_with(' ') {
            continue;
        }
        if let Some(header) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            table = header.to_string();
            continue;
        }
        // A plain table (`[fleet]`).
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = header.to_string();
            continue;
        }
        if let Some((key, _)) = line.split_once(" = ") {
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                tables
                    .entry(table.clone())
                    .or_default()
                    .insert(key.to_string());
            }
        }
    }
    tables
}

fn table_name(table: &str) -> String {
    match table {
        "" => "the top level".to_string(),
        t => format!("[[{t}]]"),
    }
}

/// Keys `accepted` has that `documented` lacks, as lines that say what to do.
fn undocumented(
    file: &Path,
    accepted: &BTreeMap<String, BTreeSet<String>>,
    documented: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for (table, keys) in accepted {
        for key in keys.difference(documented.get(table).unwrap_or(&none)) {
            out.push(format!(
                "{}: key `{key}` of {} is accepted by jitd but not documented here",
                file.display(),
                table_name(table)
            ));
        }
    }
    out
}

/// Keys `documented` names that jitd would refuse.
fn refused(
    file: &Path,
    accepted: &BTreeMap<String, BTreeSet<String>>,
    documented: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, keys) in documented {
        let Some(keys_of_table) = accepted.get(table) else {
            out.push(format!(
                "{}: documents a table {} that jitd does not accept",
                file.display(),
                table_name(table)
            ));
            continue;
        };
        // A table's own tables may be documented as its keys too (`auto_approve` of a role).
        let mut known = keys_of_table.clone();
        known.extend(accepted.keys().filter_map(|path| {
            let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
            (parent == table && !path.is_empty()).then(|| name.to_string())
        }));
        for key in keys.difference(&known) {
            out.push(format!(
                "{}: documents key `{key}` of {}, which jitd refuses",
                file.display(),
                table_name(table)
            ));
        }
    }
    out
}

#[test]
fn the_probe_reads_the_keys_serde_accepts() {
    // A struct shaped like the configuration: a rename, a skipped field, an optional value,
    // an array of tables with a spanned key (as RoleSpec has).
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: toml::Spanned<String>,
        size: Option<u32>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        plain: String,
        #[serde(rename = "table")]
        tables: Vec<Inner>,
        #[serde(skip)]
        hidden: u8,
        maybe: Option<Vec<Inner>>,
    }
    let set = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    let found = accepted_keys::<Outer>();
    assert_eq!(
        found,
        BTreeMap::from([
            (String::new(), set(&["plain"])),
            ("table".to_string(), set(&["name", "size"])),
            ("maybe".to_string(), set(&["name", "size"])),
        ])
    );
}

#[test]
fn every_key_jitd_accepts_is_documented_and_every_documented_key_is_accepted() {
    let accepted = accepted_keys::<Config>();
    // The tables the documentation is organised by; a new one needs its own section in
    // jitd.toml(5) (and a `keys:` region there).
    assert_eq!(
        accepted.keys().map(String::as_str).collect::<Vec<_>>(),
        ["", "fleet", "notifier", "role", "role.auto_approve"],
        "jitd.toml has a new table: document it in packaging/man/jitd.toml.5"
    );
    // A drop-in holds roles only, as jitd.toml(5) says, and they are the main file's roles.
    let drop_in = accepted_keys::<DropIn>();
    assert_eq!(drop_in.get(""), Some(&BTreeSet::new()));
    assert_eq!(drop_in.get("role"), accepted.get("role"));

    let mut problems = Vec::new();
    let (page_path, page) = repo_file("packaging/man/jitd.toml.5");
    let page = man_page_keys(&page);
    problems.extend(undocumented(&page_path, &accepted, &page));
    problems.extend(refused(&page_path, &accepted, &page));

    // The README's table and the sample file list every top-level key; the sample shows a
    // role too, whose keys must be real ones.
    let top = BTreeMap::from([(String::new(), accepted[""].clone())]);
    let (readme_path, readme) = repo_file("README.md");
    let readme = BTreeMap::from([(String::new(), readme_keys(&readme))]);
    problems.extend(undocumented(&readme_path, &top, &readme));
    problems.extend(refused(&readme_path, &accepted, &readme));
    let (sample_path, sample) = repo_file("packaging/jitd.toml");
    let sample = sample_config_keys(&sample);
    problems.extend(undocumented(&sample_path, &top, &sample));
    problems.extend(refused(&sample_path, &accepted, &sample));
    assert!(
        problems.is_empty(),
        "\n{}\n(a key of jitd.toml(5) is a .TP entry in the page's `.\\\" keys: TABLE` region; \
         a top-level key is also a row of the README's ## Configuration table and a \
         `#key = default` line in packaging/jitd.toml)",
        problems.join("\n")
    );
}

#[test]
fn the_parsers_of_the_documentation_find_what_is_there() {
    // Guards against a documentation parser that finds nothing and so compares nothing.
    let page = ".SH X\n.\\\" keys: top\n.TP\n.BR socket \" = \\(dq/x\\(dq\"\ntext\n.TP\n.B cgroup\n.\\\" end\n.TP\n.B outside\n";
    assert_eq!(
        man_page_keys(page),
        BTreeMap::from([(
            String::new(),
            BTreeSet::from(["socket".to_string(), "cgroup".to_string()])
        )])
    );
    let readme = "# jit\n## Configuration\n\n| key | default |\n|---|---|\n| `socket` | x |\n\n## Next\n| `no` | y |\n";
    assert_eq!(readme_keys(readme), BTreeSet::from(["socket".to_string()]));
    let sample = "# prose = not a key because of spaces\n#socket = \"/x\"\napprover_groups = []\n#[[role]]\n#name = \"x\"\n";
    let found = sample_config_keys(sample);
    assert_eq!(
        found[""],
        BTreeSet::from(["socket".to_string(), "approver_groups".to_string()])
    );
    assert_eq!(found["role"], BTreeSet::from(["name".to_string()]));
}

/// The EXAMPLES of jitd.toml(5), put together, are a configuration jitd accepts.
#[test]
fn the_examples_of_the_man_page_are_valid() {
    let (_, page) = repo_file("packaging/man/jitd.toml.5");
    let examples = page
        .split("\n.SH EXAMPLES\n")
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .expect("jitd.toml.5 has EXAMPLES");
    let mut toml = String::new();
    let mut inside = false;
    for line in examples.lines() {
        match line {
            ".EX" => inside = true,
            ".EE" => inside = false,
            _ if inside => {
                toml.push_str(&line.replace("\\(dq", "\"").replace("\\-", "-"));
                toml.push('\n');
            }
            _ => {}
        }
    }
    assert!(toml.contains("[[role]]"), "no examples found: {toml}");
    if let Err(e) = Config::parse(&toml) {
        panic!("the examples of jitd.toml(5) are refused: {e}\n{toml}");
    }
}
