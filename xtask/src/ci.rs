//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.

use std::time::{Duration, Instant};

use crate::{Result, deny, it, workspace};

/// One CI step: the header it is shown under and what it does.
struct Step {
    /// The command as a person would type it.
    name: &'static str,
    /// Runs the step; an error fails CI.
    run: fn() -> Result,
}

/// The steps, in the order they run: cheap checks first so a typo fails fast.
const STEPS: &[Step] = &[
    Step {
        name: "cargo fmt --all --check",
        run: || workspace::run(&mut workspace::cargo(["fmt", "--all", "--check"])),
    },
    Step {
        name: "cargo clippy --workspace --all-targets --all-features -- -D warnings",
        run: || {
            workspace::run(&mut workspace::cargo([
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]))
        },
    },
    Step {
        name: "cargo test --workspace --all-features --exclude <packages of `it` that need servers>",
        run: workspace_tests,
    },
    Step {
        name: "cargo xtask it all",
        run: || it::run(it::Backend::All),
    },
    Step {
        name: "cargo deny check",
        run: deny::check,
    },
];

/// `cargo test --workspace --all-features`, excluding the packages whose tests need the
/// servers `cargo xtask it` provides (they run in the next step). Only packages in the
/// workspace are excluded: cargo warns about the others.
fn workspace_tests() -> Result {
    let present = workspace::packages()?;
    let mut cmd = workspace::cargo(["test", "--workspace", "--all-features"]);
    for package in it::packages_needing_servers() {
        if present.contains(package) {
            cmd.args(["--exclude", package]);
        }
    }
    workspace::run(cmd.env("RUST_BACKTRACE", "1"))
}

/// How a step ended.
enum Outcome {
    /// It succeeded after the given time.
    Passed(Duration),
    /// It failed after the given time.
    Failed(Duration),
    /// It did not run because an earlier step failed.
    Skipped,
}

/// Runs every step, prints a summary and, last, the line `N passed, M failed` that CI reads.
/// Returns whether every step passed; failures are reported on the terminal, so the count
/// line stays the last line printed.
pub(crate) fn run() -> bool {
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(STEPS.len());
    let mut failure = None;
    for step in STEPS {
        if failure.is_some() {
            outcomes.push(Outcome::Skipped);
            continue;
        }
        println!("\n==> {}", step.name);
        let step_started = Instant::now();
        let result = (step.run)();
        let took = step_started.elapsed();
        match result {
            Ok(()) => {
                println!(
                    "<== {}: ok ({})",
                    step.name,
                    workspace::format_duration(took)
                );
                outcomes.push(Outcome::Passed(took));
            }
            Err(err) => {
                eprintln!(
                    "<== {}: FAILED ({}): {err}",
                    step.name,
                    workspace::format_duration(took)
                );
                outcomes.push(Outcome::Failed(took));
                failure = Some(format!("CI failed at step `{}`", step.name));
            }
        }
    }

    println!("\n==> summary");
    let (mut passed, mut failed) = (0, 0);
    for (step, outcome) in STEPS.iter().zip(&outcomes) {
        let (label, took) = match outcome {
            Outcome::Passed(took) => {
                passed += 1;
                ("ok", workspace::format_duration(*took))
            }
            Outcome::Failed(took) => {
                failed += 1;
                ("FAILED", workspace::format_duration(*took))
            }
            Outcome::Skipped => ("skipped", String::new()),
        };
        println!("  {label:<8} {took:>7}  {}", step.name);
    }
    println!("  total    {:>7}", workspace::elapsed(started));
    if let Some(message) = &failure {
        eprintln!("error: {message}");
    }
    println!("{passed} passed, {failed} failed");
    failure.is_none()
}
