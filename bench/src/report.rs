//! The one table: printed for people, and written as JSON for comparing two runs.
//!
//! `target/bench/results.json`:
//! ```json
//! { "started": "2026-11-29T02:30:00Z", "machine": { "nproc": 2, "cpu": "…", "kernel": "…" },
//!   "rows": [ { "key": "pam.jit.p99_us", "label": "…", "value": 123.4, "unit": "µs",
//!               "goal": "≤ 200", "met": true } ] }
//! ```
//! `key` is stable between runs; `goal` and `met` are absent for figures without a goal.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

pub struct Row {
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: &'static str,
    pub goal: Option<Goal>,
}

#[derive(Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(g) => v <= g,
            Goal::AtLeast(g) => v >= g,
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtMost(g) => format!("≤ {}", number(g)),
            Goal::AtLeast(g) => format!("≥ {}", number(g)),
        }
    }
}

fn number(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    pub fn add(&mut self, key: &str, label: &str, value: f64, unit: &'static str) {
        self.rows.push(Row {
            key: key.into(),
            label: label.into(),
            value,
            unit,
            goal: None,
        });
    }

    pub fn goal(&mut self, key: &str, label: &str, value: f64, unit: &'static str, goal: Goal) {
        self.rows.push(Row {
            key: key.into(),
            label: label.into(),
            value,
            unit,
            goal: Some(goal),
        });
    }

    /// A line printed under the table (how something was measured, what went wrong).
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("note: {text}");
        self.notes.push(text);
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .rows
            .iter()
            .map(|r| r.label.chars().count())
            .max()
            .unwrap_or(10);
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:<5} {:>10}  met",
            "measurement", "value", "unit", "goal"
        );
        for r in &self.rows {
            let (goal, met) = match r.goal {
                Some(g) => (g.text(), if g.met(r.value) { "yes" } else { "NO" }),
                None => (String::new(), ""),
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:>12}  {:<5} {:>10}  {}",
                r.label,
                number(r.value),
                r.unit,
                goal,
                met
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }

    pub fn write_json(&self, path: &Path, started: &str) -> std::io::Result<()> {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut v = json!({
                    "key": r.key, "label": r.label, "value": finite(r.value), "unit": r.unit,
                });
                if let Some(g) = r.goal {
                    v["goal"] = json!(g.text());
                    v["met"] = json!(g.met(r.value));
                }
                v
            })
            .collect();
        let doc = json!({
            "started": started,
            "machine": machine(),
            "rows": rows,
            "notes": self.notes,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
    }
}

/// JSON has no NaN: a figure that could not be measured is null.
fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// nproc, CPU model and kernel, for the table's header.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "nproc": nproc, "cpu": cpu, "kernel": kernel })
}

/// `(key, label, value, unit)` of each row in a JSON array of rows.
fn rows_of(rows: &Value) -> Vec<(String, String, Option<f64>, String)> {
    rows.as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["key"].as_str().unwrap_or_default().to_string(),
                        r["label"].as_str().unwrap_or_default().to_string(),
                        r["value"].as_f64(),
                        r["unit"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Report {
    /// Adds the rows `cargo bench -p jitd --bench core` wrote (a JSON array of rows).
    pub fn add_micro(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (key, label, value, unit) in rows_of(&doc) {
            let unit = match unit.as_str() {
                "ns" => "ns",
                "µs" => "µs",
                "×" => "×",
                _ => "",
            };
            self.add(&key, &label, value.unwrap_or(f64::NAN), unit);
        }
        Ok(())
    }
}

/// One row of a results file as `--compare` reads it.
struct Stored {
    key: String,
    label: String,
    value: Option<f64>,
    unit: String,
    goal: Option<String>,
    met: Option<bool>,
}

fn stored_rows(doc: &Value) -> Vec<Stored> {
    doc["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| Stored {
                    key: r["key"].as_str().unwrap_or_default().to_string(),
                    label: r["label"].as_str().unwrap_or_default().to_string(),
                    value: r["value"].as_f64(),
                    unit: r["unit"].as_str().unwrap_or_default().to_string(),
                    goal: r["goal"].as_str().map(String::from),
                    met: r["met"].as_bool(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The rows both results files have, joined on `key`, in NEW's order: old figure, new figure,
/// new/old, and for figures with a goal whether each run met it. Rows only one file has are
/// named under the table (a section left out with `--only`, or a row added since).
pub fn compare(old: &Path, new: &Path) -> Result<String, String> {
    let load = |p: &Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let (old_doc, new_doc) = (load(old)?, load(new)?);
    let (before, after) = (stored_rows(&old_doc), stored_rows(&new_doc));
    let both: Vec<(&Stored, &Stored)> = after
        .iter()
        .filter_map(|n| before.iter().find(|o| o.key == n.key).map(|o| (o, n)))
        .collect();
    let width = both
        .iter()
        .map(|(_, n)| n.label.chars().count())
        .max()
        .unwrap_or(10);
    let mut out = String::new();
    let started = |d: &Value| d["started"].as_str().unwrap_or("?").to_string();
    let _ = writeln!(
        out,
        "old: {} ({})\nnew: {} ({})\n",
        old.display(),
        started(&old_doc),
        new.display(),
        started(&new_doc)
    );
    let _ = writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}  {:<5} {:>8}  {:>10}  met old → new",
        "measurement", "old", "new", "unit", "new/old", "goal"
    );
    let show = |v: Option<f64>| v.map_or("-".to_string(), number);
    let yes = |m: Option<bool>| match m {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    for (o, n) in &both {
        let ratio = match (o.value, n.value) {
            (Some(a), Some(b)) if a != 0.0 => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        let met = match (&n.goal, &o.goal) {
            (None, None) => String::new(),
            _ => format!("{} → {}", yes(o.met), yes(n.met)),
        };
        let goal = n
            .goal
            .clone()
            .or_else(|| o.goal.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<width$}  {:>10}  {:>10}  {:<5} {ratio:>8}  {goal:>10}  {met}",
            n.label,
            show(o.value),
            show(n.value),
            n.unit,
        );
    }
    let only = |rows: &[Stored], other: &[Stored]| -> Vec<String> {
        rows.iter()
            .filter(|r| !other.iter().any(|o| o.key == r.key))
            .map(|r| r.key.clone())
            .collect()
    };
    for (which, keys) in [
        ("old", only(&before, &after)),
        ("new", only(&after, &before)),
    ] {
        if !keys.is_empty() {
            let _ = writeln!(out, "only in {which}: {}", keys.join(", "));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, doc: Value) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, doc.to_string()).unwrap();
        path
    }

    #[test]
    fn compare_joins_rows_on_key_and_says_which_goals_each_run_met() {
        let dir = std::env::temp_dir().join(format!("jit-bench-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = file(
            &dir,
            "old.json",
            json!({ "started": "A", "rows": [
                { "key": "ssh.ratio.p50", "label": "ssh ratio", "value": 1.08, "unit": "×",
                  "goal": "≤ 1.02", "met": false },
                { "key": "gone", "label": "gone", "value": 1.0, "unit": "" } ] }),
        );
        let new = file(
            &dir,
            "new.json",
            json!({ "started": "B", "rows": [
                { "key": "ssh.ratio.p50", "label": "ssh ratio", "value": 1.01, "unit": "×",
                  "goal": "≤ 1.02", "met": true },
                { "key": "added", "label": "added", "value": 2.0, "unit": "" } ] }),
        );
        let table = compare(&old, &new).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let row = table.lines().find(|l| l.starts_with("ssh ratio")).unwrap();
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            words,
            ["ssh", "ratio", "1.08", "1.01", "×", "0.94", "≤", "1.02", "NO", "→", "yes"]
        );
        assert!(table.contains("only in old: gone"), "{table}");
        assert!(table.contains("only in new: added"), "{table}");
    }
}
