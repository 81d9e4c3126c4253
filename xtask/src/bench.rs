//! `cargo xtask bench <name|all>`: runs criterion benches and reports ours vs raw.
//!
//! The benches follow one convention: inside a criterion group every measured case exists
//! twice, as `BenchmarkId::new("ours", case)` and `BenchmarkId::new("raw", case)`, the group
//! sets `Throughput::Elements(n)`, and the groups of bench `<name>` are named `<name>/...`.
//! Criterion stores each result as `<target>/criterion/<dirs>/new/{benchmark,estimates}.json`;
//! the directory names are mangled, so the ids are read from `benchmark.json`.

use std::{
    cmp::Ordering,
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::it::Backend;
use crate::servers::{self, Provided, Reuse};
use crate::{Result, workspace};

/// What a bench that needs servers gets: the servers (stopped when this is dropped) and the
/// variables the bench reads.
#[derive(Default)]
struct BenchServers {
    _servers: Option<Provided>,
    vars: Vec<(&'static str, String)>,
}

/// The servers of a bench: a fresh server per run (never one from the environment, so that
/// nothing else shares it while it is measured), and the variables the bench reads: `redis`
/// gets a redis-server (`STATS_BENCH_REDIS_URL`, and `STATS_REDIS_BENCHMARK_BIN`), `sql` a
/// PostgreSQL (`STATS_BENCH_POSTGRES_URL`), `mongo` a MongoDB-wire server (mongoeco,
/// `STATS_BENCH_MONGO_URL`), `buffer` a redis-server as `redis` does, `cli` a redis-server
/// and the release `stats` binary, built here (`STATS_BENCH_STATS_BIN`); the other benches
/// need none.
fn servers_for(name: &str) -> Result<BenchServers> {
    let backend = match name {
        "redis" | "buffer" | "cli" => Backend::Redis,
        "sql" => Backend::Postgres,
        "mongo" => Backend::Mongo,
        _ => return Ok(BenchServers::default()),
    };
    let provided = servers::provide(backend, Reuse::Never)?;
    let mut env = Vec::new();
    for (var, value) in provided.env() {
        match *var {
            servers::REDIS_URL => env.push(("STATS_BENCH_REDIS_URL", value.clone())),
            servers::REDIS_SERVER_BIN => {
                // redis-benchmark ships beside redis-server (Debian: redis-tools).
                let bench = std::path::Path::new(value).with_file_name("redis-benchmark");
                let bench = if bench.exists() {
                    bench.display().to_string()
                } else {
                    "redis-benchmark".into()
                };
                env.push(("STATS_REDIS_BENCHMARK_BIN", bench));
            }
            servers::POSTGRES_URL => env.push(("STATS_BENCH_POSTGRES_URL", value.clone())),
            servers::MONGO_URL => env.push(("STATS_BENCH_MONGO_URL", value.clone())),
            _ => {}
        }
    }
    if name == "cli" {
        // The bench runs the `stats` binary as a process: build it (release) and pass its path.
        workspace::run(&mut workspace::cargo([
            "build",
            "-p",
            "stats-cli",
            "--release",
            "--bin",
            "stats",
        ]))?;
        let bin = workspace::target_dir()
            .join("release")
            .join(format!("stats{}", std::env::consts::EXE_SUFFIX));
        env.push(("STATS_BENCH_STATS_BIN", bin.display().to_string()));
    }
    Ok(BenchServers {
        _servers: Some(provided),
        vars: env,
    })
}

/// The package holding the criterion benches.
const PACKAGE: &str = "stats-benches";

/// The function id of our implementation's measurement of a case.
const OURS: &str = "ours";

/// The function id of the raw baseline's measurement of a case.
const RAW: &str = "raw";

/// The variable naming the file a bench appends its other figures to (one per line: name,
/// value, unit, detail, separated by tabs), as `stats_benches::figure` does.
const FIGURES_VAR: &str = "STATS_BENCH_FIGURES";

/// Runs bench `name` (or every bench target for `all`) unless `no_run`, then prints the
/// report and writes it to `<target>/stats-bench/<name>.json`. Figures that are not
/// throughputs (ratios, maxima) come from `<target>/stats-bench/<name>.figures.tsv`, which the
/// bench writes (see [`FIGURES_VAR`]); with `no_run`, those of the last run.
///
/// Fails when cargo bench fails or when no result of the bench's groups is found.
pub(crate) fn run(name: &str, no_run: bool, criterion_args: &[String]) -> Result {
    let names = if name == "all" {
        bench_targets()?
    } else {
        vec![name.to_owned()]
    };
    let out_dir = workspace::target_dir().join("stats-bench");
    fs::create_dir_all(&out_dir)
        .map_err(|err| format!("cannot create {}: {err}", out_dir.display()))?;
    for name in &names {
        let figures_path = out_dir.join(format!("{name}.figures.tsv"));
        // Results older than this run belong to cases it did not measure (removed, or
        // filtered out by criterion arguments); mixing them in would pair stale figures.
        let since = if no_run {
            None
        } else {
            // Servers the bench talks to, started fresh for it and stopped after it.
            let provided = servers_for(name)?;
            let started = SystemTime::now();
            let mut cmd = workspace::cargo(["bench", "-p", PACKAGE, "--bench", name]);
            for (var, value) in &provided.vars {
                cmd.env(var, value);
            }
            match fs::remove_file(&figures_path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(format!("cannot remove {}: {err}", figures_path.display()).into());
                }
            }
            cmd.env(FIGURES_VAR, &figures_path);
            if !criterion_args.is_empty() {
                cmd.arg("--").args(criterion_args);
            }
            workspace::run(&mut cmd)?;
            drop(provided);
            Some(started)
        };
        let criterion_dir = workspace::target_dir().join("criterion");
        let mut report = Report::collect(&criterion_dir, name, since)?;
        report.figures = read_figures(&figures_path)?;
        if report.rows.is_empty() {
            return Err(format!(
                "no criterion results of groups `{name}/...` found under {}",
                criterion_dir.display()
            )
            .into());
        }
        println!("\n{}", report.table());
        for line in report.scaling() {
            println!("{line}");
        }
        for figure in &report.figures {
            println!("{figure}");
        }
        for note in &report.notes {
            eprintln!("note: {note}");
        }
        let out = out_dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&report.to_json())?;
        fs::write(&out, text + "\n")
            .map_err(|err| format!("cannot write {}: {err}", out.display()))?;
        println!("report written to {}", out.display());
    }
    Ok(())
}

/// The bench targets of the benches package, from `cargo metadata` (which reads the
/// `[[bench]]` entries of benches/Cargo.toml, including any cargo discovers on its own).
fn bench_targets() -> Result<Vec<String>> {
    let metadata = workspace::metadata()?;
    let names = bench_targets_of(&metadata, PACKAGE);
    if names.is_empty() {
        return Err(format!("package `{PACKAGE}` has no bench targets").into());
    }
    Ok(names)
}

/// The names of the bench targets of `package` in `cargo metadata` output.
fn bench_targets_of(metadata: &Value, package: &str) -> Vec<String> {
    let packages = metadata["packages"].as_array().into_iter().flatten();
    packages
        .filter(|p| p["name"] == package)
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bench"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

/// One side (ours or raw) of a case: criterion's median time per iteration and its spread.
#[derive(Clone, Debug, PartialEq)]
struct Measurement {
    /// Elements processed per iteration (the group's `Throughput::Elements`).
    elements: u64,
    /// Median time per iteration, in nanoseconds.
    median_ns: f64,
    /// 95% confidence interval of the median, in nanoseconds (lower, upper).
    median_ci_ns: (f64, f64),
    /// Median absolute deviation of the per-iteration times, in nanoseconds.
    median_abs_dev_ns: f64,
}

impl Measurement {
    /// Converts nanoseconds per iteration into millions of elements per second.
    fn melem_per_s_at(&self, ns: f64) -> f64 {
        self.elements as f64 * 1e3 / ns
    }

    /// Throughput at the median, in millions of elements per second.
    fn melem_per_s(&self) -> f64 {
        self.melem_per_s_at(self.median_ns)
    }

    /// The 95% confidence interval of the throughput (lower, upper).
    fn melem_per_s_ci(&self) -> (f64, f64) {
        (
            self.melem_per_s_at(self.median_ci_ns.1),
            self.melem_per_s_at(self.median_ci_ns.0),
        )
    }

    /// The median absolute deviation as a percentage of the median.
    fn spread_pct(&self) -> f64 {
        self.median_abs_dev_ns / self.median_ns * 100.0
    }

    /// The JSON form written to the report file.
    fn to_json(&self) -> Value {
        let (lo, hi) = self.melem_per_s_ci();
        json!({
            "elements_per_iter": self.elements,
            "median_ns": self.median_ns,
            "median_ci95_ns": [self.median_ci_ns.0, self.median_ci_ns.1],
            "median_abs_dev_ns": self.median_abs_dev_ns,
            "melem_per_s": self.melem_per_s(),
            "melem_per_s_ci95": [lo, hi],
            "spread_pct": self.spread_pct(),
        })
    }
}

/// A figure of a bench that is not a throughput beside a baseline (a ratio, a maximum).
#[derive(Clone, Debug, PartialEq)]
struct Figure {
    name: String,
    value: f64,
    unit: String,
    detail: String,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:.1} {}", self.name, self.value, self.unit)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// The figures in `path` (none when the file does not exist).
///
/// Fails on a line that is not `name<TAB>value<TAB>unit<TAB>detail` with a numeric value,
/// naming the file and the line.
fn read_figures(path: &Path) -> Result<Vec<Figure>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(format!("cannot read {}: {err}", path.display()).into()),
    };
    parse_figures(&text).map_err(|err| format!("{}: {err}", path.display()).into())
}

/// Parses the lines of a figures file.
fn parse_figures(text: &str) -> std::result::Result<Vec<Figure>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            let bad = || {
                format!(
                    "line {}: expected name, value, unit, detail: {line:?}",
                    i + 1
                )
            };
            let parts: Vec<&str> = line.split('\t').collect();
            let [name, value, unit, detail] = parts[..] else {
                return Err(bad());
            };
            let value: f64 = value.parse().map_err(|_| bad())?;
            Ok(Figure {
                name: name.to_owned(),
                value,
                unit: unit.to_owned(),
                detail: detail.to_owned(),
            })
        })
        .collect()
}

/// One line of the report: a case of a group, ours beside raw.
#[derive(Clone, Debug, Default, PartialEq)]
struct Row {
    /// The criterion group id, e.g. `atomics/inc`.
    group: String,
    /// The case (criterion's value string), `-` if the id had none.
    case: String,
    /// Our implementation's measurement, if present.
    ours: Option<Measurement>,
    /// The raw baseline's measurement, if present.
    raw: Option<Measurement>,
}

impl Row {
    /// Throughput of ours divided by throughput of raw (above 1: ours is faster).
    fn ratio(&self) -> Option<f64> {
        Some(self.ours.as_ref()?.melem_per_s() / self.raw.as_ref()?.melem_per_s())
    }

    /// A conservative 95% interval of the ratio, from the two confidence intervals.
    fn ratio_ci(&self) -> Option<(f64, f64)> {
        let (ours_lo, ours_hi) = self.ours.as_ref()?.melem_per_s_ci();
        let (raw_lo, raw_hi) = self.raw.as_ref()?.melem_per_s_ci();
        Some((ours_lo / raw_hi, ours_hi / raw_lo))
    }
}

/// The report of one bench: its rows, sorted by group then case.
#[derive(Debug)]
struct Report {
    /// The bench target name.
    bench: String,
    /// One row per (group, case).
    rows: Vec<Row>,
    /// Results that were found but left out, and why.
    notes: Vec<String>,
    /// The bench's other figures, in the order it reported them.
    figures: Vec<Figure>,
}

impl Report {
    /// Reads every result under `criterion_dir` whose group belongs to bench `bench`,
    /// keeping only results written at or after `since` when given.
    fn collect(criterion_dir: &Path, bench: &str, since: Option<SystemTime>) -> Result<Self> {
        let mut result_dirs = Vec::new();
        find_result_dirs(criterion_dir, &mut result_dirs)?;
        // File times can be coarser than the clock, so allow a little slack.
        let since = since.map(|t| t - Duration::from_secs(2));

        let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
        let mut notes = Vec::new();
        for dir in result_dirs {
            let id = read_json(&dir.join("benchmark.json"))?;
            let group = id["group_id"].as_str().unwrap_or_default();
            if !belongs_to(group, bench) {
                continue;
            }
            let estimates_path = dir.join("estimates.json");
            if let Some(since) = since {
                let written = fs::metadata(&estimates_path).and_then(|m| m.modified());
                if written.is_ok_and(|written| written < since) {
                    continue;
                }
            }
            let full_id = id["full_id"].as_str().unwrap_or(group).to_owned();
            let function = id["function_id"].as_str().unwrap_or_default();
            if function != OURS && function != RAW {
                notes.push(format!(
                    "{full_id}: function id is neither `{OURS}` nor `{RAW}`, left out"
                ));
                continue;
            }
            let Some(elements) = elements_per_iter(&id["throughput"]) else {
                notes.push(format!(
                    "{full_id}: no Throughput::Elements in benchmark.json, left out"
                ));
                continue;
            };
            let estimates = read_json(&estimates_path)?;
            let measurement = measurement(&estimates, elements)
                .ok_or_else(|| format!("{}: unexpected format", estimates_path.display()))?;
            let case = id["value_str"].as_str().unwrap_or("-").to_owned();
            let row = rows
                .entry((group.to_owned(), case.clone()))
                .or_insert_with(|| Row {
                    group: group.to_owned(),
                    case,
                    ..Row::default()
                });
            if function == OURS {
                row.ours = Some(measurement);
            } else {
                row.raw = Some(measurement);
            }
        }

        let mut rows: Vec<Row> = rows.into_values().collect();
        rows.sort_by(|a, b| {
            a.group
                .cmp(&b.group)
                .then_with(|| natural_cmp(&a.case, &b.case))
        });
        notes.sort();
        Ok(Self {
            bench: bench.to_owned(),
            rows,
            notes,
            figures: Vec::new(),
        })
    }

    /// The report as an aligned text table.
    fn table(&self) -> String {
        let header = [
            "group",
            "case",
            "ours Melem/s",
            "raw Melem/s",
            "ours/raw",
            "± ours",
            "± raw",
        ];
        let dash = || "-".to_owned();
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|row| {
                [
                    row.group.clone(),
                    row.case.clone(),
                    row.ours
                        .as_ref()
                        .map_or_else(dash, |m| significant(m.melem_per_s())),
                    row.raw
                        .as_ref()
                        .map_or_else(dash, |m| significant(m.melem_per_s())),
                    row.ratio().map_or_else(dash, |r| format!("{r:.3}")),
                    row.ours
                        .as_ref()
                        .map_or_else(dash, |m| format!("{:.1}%", m.spread_pct())),
                    row.raw
                        .as_ref()
                        .map_or_else(dash, |m| format!("{:.1}%", m.spread_pct())),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for line in &cells {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }

        let mut out = format!(
            "bench `{}` (median throughput; ± is MAD/median)\n",
            self.bench
        );
        let mut push_line = |line: &[String]| {
            for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
                let pad = " ".repeat(width - cell.chars().count());
                // Text columns align left, figures right.
                if i < 2 {
                    out.push_str(cell);
                    out.push_str(&pad);
                } else {
                    out.push_str(&pad);
                    out.push_str(cell);
                }
                out.push_str(if i + 1 < line.len() { "  " } else { "\n" });
            }
        };
        push_line(&header.map(str::to_owned));
        push_line(&widths.map(|w| "-".repeat(w)));
        for line in &cells {
            push_line(line);
        }
        out
    }

    /// How our throughput scales with threads: in each group that has a `1-thread` case, every
    /// case named `<n>-threads...` as a multiple of our 1-thread rate (e.g. the atomics store's
    /// keyed increments on 2 threads with distinct keys), with both spreads.
    fn scaling(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for base in self.rows.iter().filter(|r| r.case == "1-thread") {
            let Some(one) = &base.ours else { continue };
            for row in self.rows.iter().filter(|r| r.group == base.group) {
                let threaded = row
                    .case
                    .split_once("-threads")
                    .map(|(n, _)| n.parse::<u32>());
                let (Some(Ok(_)), Some(ours)) = (threaded, &row.ours) else {
                    continue;
                };
                lines.push(format!(
                    "{} {}: ours {:.2}x our 1-thread rate (± {:.1}% / ± {:.1}%)",
                    row.group,
                    row.case,
                    ours.melem_per_s() / one.melem_per_s(),
                    ours.spread_pct(),
                    one.spread_pct(),
                ));
            }
        }
        lines
    }

    /// The report as JSON, for comparing runs later.
    fn to_json(&self) -> Value {
        let generated = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "group": row.group,
                    "case": row.case,
                    OURS: row.ours.as_ref().map(Measurement::to_json),
                    RAW: row.raw.as_ref().map(Measurement::to_json),
                    "ratio": row.ratio(),
                    "ratio_ci95": row.ratio_ci().map(|(lo, hi)| [lo, hi]),
                })
            })
            .collect();
        json!({
            "bench": self.bench,
            "generated_unix_secs": generated,
            "unit": "Melem/s (median); ratio = ours / raw throughput",
            "rows": rows,
            "figures": self.figures.iter().map(|f| json!({
                "name": f.name,
                "value": f.value,
                "unit": f.unit,
                "detail": f.detail,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Whether criterion group `group` belongs to bench `bench` (`bench` or `bench/...`).
fn belongs_to(group: &str, bench: &str) -> bool {
    group
        .strip_prefix(bench)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Collects every directory named `new` below `dir` that holds a criterion result.
fn find_result_dirs(dir: &Path, found: &mut Vec<PathBuf>) -> Result {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(format!("cannot read {}: {err}", dir.display()).into()),
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|name| name == "new")
            && path.join("benchmark.json").is_file()
            && path.join("estimates.json").is_file()
        {
            found.push(path);
        } else {
            find_result_dirs(&path, found)?;
        }
    }
    Ok(())
}

/// Reads and parses a JSON file, naming the file in errors.
fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()).into())
}

/// Elements per iteration from criterion's serialized `Throughput`.
fn elements_per_iter(throughput: &Value) -> Option<u64> {
    throughput["Elements"]
        .as_u64()
        .or_else(|| throughput["ElementsAndBytes"]["elements"].as_u64())
        .filter(|&n| n > 0)
}

/// The median and its spread from criterion's `estimates.json`.
fn measurement(estimates: &Value, elements: u64) -> Option<Measurement> {
    let median = &estimates["median"];
    let ci = &median["confidence_interval"];
    let measurement = Measurement {
        elements,
        median_ns: median["point_estimate"].as_f64()?,
        median_ci_ns: (ci["lower_bound"].as_f64()?, ci["upper_bound"].as_f64()?),
        median_abs_dev_ns: estimates["median_abs_dev"]["point_estimate"].as_f64()?,
    };
    (measurement.median_ns > 0.0 && measurement.median_ci_ns.0 > 0.0).then_some(measurement)
}

/// Orders cases numerically when both are numbers, else as text (numbers first).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Formats a throughput with three significant digits (at least none after the point).
fn significant(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 9) as usize;
    format!("{x:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "xtask-bench-{name}-{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Writes one criterion result the way criterion 0.8 lays it out.
    fn write_result(
        criterion: &Path,
        dir: &str,
        group: &str,
        function: Option<&str>,
        case: Option<&str>,
        throughput: Value,
        median_ns: f64,
    ) {
        let new = criterion.join(dir).join("new");
        fs::create_dir_all(&new).unwrap();
        let benchmark = json!({
            "group_id": group,
            "function_id": function,
            "value_str": case,
            "throughput": throughput,
            "full_id": format!("{group}/{}/{}", function.unwrap_or("-"), case.unwrap_or("-")),
            "directory_name": dir,
            "title": group,
        });
        let estimate = |point: f64| {
            json!({
                "confidence_interval": {
                    "confidence_level": 0.95,
                    "lower_bound": point * 0.9,
                    "upper_bound": point * 1.1,
                },
                "point_estimate": point,
                "standard_error": point * 0.01,
            })
        };
        let estimates = json!({
            "mean": estimate(median_ns),
            "median": estimate(median_ns),
            "median_abs_dev": estimate(median_ns * 0.02),
            "slope": null,
            "std_dev": estimate(median_ns * 0.03),
        });
        fs::write(new.join("benchmark.json"), benchmark.to_string()).unwrap();
        fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
        // A baseline next to `new` must be ignored.
        let base = criterion.join(dir).join("base");
        fs::create_dir_all(&base).unwrap();
        fs::write(base.join("benchmark.json"), benchmark.to_string()).unwrap();
    }

    #[test]
    fn pairs_ours_with_raw_per_group_and_case() {
        let scratch = Scratch::new("pairs");
        let c = &scratch.0;
        let elements = |n: u64| json!({ "Elements": n });
        write_result(
            c,
            "atomics_inc/ours/10",
            "atomics/inc",
            Some("ours"),
            Some("10"),
            elements(1000),
            2000.0,
        );
        write_result(
            c,
            "atomics_inc/raw/10",
            "atomics/inc",
            Some("raw"),
            Some("10"),
            elements(1000),
            1000.0,
        );
        write_result(
            c,
            "atomics_inc/ours/2",
            "atomics/inc",
            Some("ours"),
            Some("2"),
            elements(1000),
            500.0,
        );
        write_result(
            c,
            "atomics/ours/only",
            "atomics",
            Some("ours"),
            None,
            elements(1),
            10.0,
        );
        write_result(
            c,
            "atomics_inc/other/10",
            "atomics/inc",
            Some("other"),
            Some("10"),
            elements(1),
            1.0,
        );
        write_result(
            c,
            "atomics_inc/ours/bytes",
            "atomics/inc",
            Some("ours"),
            Some("bytes"),
            json!({ "Bytes": 8 }),
            1.0,
        );
        write_result(
            c,
            "atomicsx_inc/ours/1",
            "atomicsx/inc",
            Some("ours"),
            Some("1"),
            elements(1),
            1.0,
        );
        write_result(
            c,
            "redis_inc/ours/1",
            "redis/inc",
            Some("ours"),
            Some("1"),
            elements(1),
            1.0,
        );

        let report = Report::collect(c, "atomics", None).unwrap();
        let keys: Vec<_> = report
            .rows
            .iter()
            .map(|r| (r.group.as_str(), r.case.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("atomics", "-"),
                ("atomics/inc", "2"),
                ("atomics/inc", "10")
            ]
        );
        assert_eq!(report.notes.len(), 2, "{:?}", report.notes);

        let row = &report.rows[2];
        let ours = row.ours.as_ref().unwrap();
        // 1000 elements in 2000 ns = 500 Melem/s.
        assert!((ours.melem_per_s() - 500.0).abs() < 1e-9);
        assert!((row.raw.as_ref().unwrap().melem_per_s() - 1000.0).abs() < 1e-9);
        assert!((row.ratio().unwrap() - 0.5).abs() < 1e-9);
        assert!((ours.spread_pct() - 2.0).abs() < 1e-9);
        let (lo, hi) = ours.melem_per_s_ci();
        assert!(lo < 500.0 && 500.0 < hi);
        let (rlo, rhi) = row.ratio_ci().unwrap();
        assert!(rlo < 0.5 && 0.5 < rhi);

        assert_eq!(report.rows[1].raw, None);
        assert_eq!(report.rows[1].ratio(), None);

        let table = report.table();
        assert!(table.contains("ours/raw"), "{table}");
        assert!(table.contains("0.500"), "{table}");
        let json = report.to_json();
        assert_eq!(json["rows"].as_array().unwrap().len(), 3);
        assert_eq!(json["rows"][1]["raw"], Value::Null);
        assert_eq!(json["rows"][2]["ratio"], 0.5);
    }

    #[test]
    fn results_older_than_the_run_are_left_out() {
        let scratch = Scratch::new("stale");
        write_result(
            &scratch.0,
            "b_g/ours/1",
            "b/g",
            Some("ours"),
            Some("1"),
            json!({ "Elements": 1 }),
            1.0,
        );
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(
            Report::collect(&scratch.0, "b", Some(later))
                .unwrap()
                .rows
                .is_empty()
        );
        assert_eq!(
            Report::collect(&scratch.0, "b", Some(SystemTime::now()))
                .unwrap()
                .rows
                .len(),
            1
        );
    }

    #[test]
    fn scaling_is_each_threaded_case_over_our_one_thread_rate() {
        let scratch = Scratch::new("scaling");
        let c = &scratch.0;
        let elements = |n: u64| json!({ "Elements": n });
        // 1 thread: 1 element in 50 ns = 20 M/s; 2 threads: 2 elements in 62.5 ns = 32 M/s.
        for (dir, function, case, n, ns) in [
            ("k1o", "ours", "1-thread", 1, 50.0),
            ("k1r", "raw", "1-thread", 1, 25.0),
            ("k2o", "ours", "2-threads-distinct", 2, 62.5),
            ("k2r", "raw", "2-threads-distinct", 2, 25.0),
            ("kao", "ours", "async-trait", 1, 100.0),
        ] {
            write_result(
                c,
                dir,
                "atomics/keyed",
                Some(function),
                Some(case),
                elements(n),
                ns,
            );
        }
        let report = Report::collect(c, "atomics", None).unwrap();
        let lines = report.scaling();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("atomics/keyed 2-threads-distinct: ours 1.60x"),
            "{lines:?}"
        );
    }

    #[test]
    fn figures_are_read_in_order_and_bad_lines_are_named() {
        let figures =
            parse_figures("a ratio\t104.5\tx fewer\t1 run\nmax\t20000\tentries\t\n").unwrap();
        assert_eq!(figures.len(), 2);
        assert_eq!(figures[0].to_string(), "a ratio: 104.5 x fewer (1 run)");
        assert_eq!(figures[1].to_string(), "max: 20000.0 entries");
        let err = parse_figures("ok\t1\tu\td\nbroken\tNaNx\tu\td\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(parse_figures("too\tfew\n").unwrap_err().contains("too"));

        let scratch = Scratch::new("figures");
        assert!(
            read_figures(&scratch.0.join("none.tsv"))
                .unwrap()
                .is_empty()
        );
        let path = scratch.0.join("b.figures.tsv");
        fs::write(&path, "x\tnot a number\tu\td\n").unwrap();
        let err = read_figures(&path).unwrap_err().to_string();
        assert!(
            err.contains("b.figures.tsv") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_criterion_dir_is_an_empty_report() {
        let report = Report::collect(Path::new("/nonexistent/criterion"), "b", None).unwrap();
        assert!(report.rows.is_empty());
    }

    #[test]
    fn bench_targets_come_from_metadata() {
        let metadata = json!({
            "packages": [
                { "name": "stats", "targets": [{ "name": "x", "kind": ["bench"] }] },
                { "name": "stats-benches", "targets": [
                    { "name": "stats_benches", "kind": ["lib"] },
                    { "name": "atomics", "kind": ["bench"] },
                    { "name": "buffer", "kind": ["bench"] },
                ] },
            ]
        });
        assert_eq!(
            bench_targets_of(&metadata, "stats-benches"),
            ["atomics", "buffer"]
        );
    }

    #[test]
    fn groups_belong_to_their_bench_only() {
        assert!(belongs_to("atomics/inc", "atomics"));
        assert!(belongs_to("atomics", "atomics"));
        assert!(!belongs_to("atomicsx/inc", "atomics"));
        assert!(!belongs_to("redis/atomics", "atomics"));
    }

    #[test]
    fn figures_keep_three_significant_digits() {
        assert_eq!(significant(1234.4), "1234");
        assert_eq!(significant(12.345), "12.3");
        assert_eq!(significant(0.012345), "0.0123");
        assert_eq!(natural_cmp("2", "10"), Ordering::Less);
        assert_eq!(natural_cmp("10", "a"), Ordering::Less);
    }
}
