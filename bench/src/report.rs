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

/// Prints two results files side by side, joined on `key`: old, new, new/old.
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

pub fn compare(old: &Path, new: &Path) -> Result<String, String> {
    let load = |p: &Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let (old, new) = (load(old)?, load(new)?);
    let rows = |doc: &Value| rows_of(&doc["rows"]);
    let before = rows(&old);
    let mut out = String::new();
    let width = before
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(10);
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>12}  {:<5} {:>8}",
        "measurement", "old", "new", "unit", "new/old"
    );
    for (key, label, value, unit) in rows(&new) {
        let was = before.iter().find(|r| r.0 == key).and_then(|r| r.2);
        let show = |v: Option<f64>| v.map_or("-".to_string(), number);
        let ratio = match (was, value) {
            (Some(a), Some(b)) if a != 0.0 => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{label:<width$}  {:>12}  {:>12}  {unit:<5} {ratio:>8}",
            show(was),
            show(value)
        );
    }
    Ok(out)
}
