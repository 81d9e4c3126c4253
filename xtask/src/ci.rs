//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! The workspace compiles once for the tests: `cargo test --workspace --all-features`
//! ([`it::CARGO_TEST`]) first builds every test binary, then every backend's servers start
//! (from [`servers::provide`], honouring the `STATS_TEST_*` variables), then one run of the
//! same command runs every unit, integration and doc test of every package exactly once with
//! every server's variables in its environment, and the servers stop.

use std::time::{Duration, Instant};

use crate::{
    Result, deny,
    it::{self, Backend},
    servers::{self, Provided, Reuse},
    workspace,
};

/// What the steps share: the servers, from the step that starts them to the one that stops
/// them (or, after a failure in between, to the end of [`run`], which drops them).
#[derive(Default)]
struct State {
    /// Every backend's servers while they run.
    servers: Option<Provided>,
}

/// One CI step: the header it is shown under and what it does.
struct Step {
    /// The command as a person would type it, or what the step does.
    name: &'static str,
    /// Runs the step; an error fails CI.
    run: fn(&mut State) -> Result,
}

/// The steps, in the order they run: cheap checks first so a typo fails fast, and the build
/// before the servers start so that they do not wait through it (nor start for a build that
/// fails).
const STEPS: &[Step] = &[
    Step {
        name: "cargo fmt --all --check",
        run: |_| workspace::run(&mut workspace::cargo(["fmt", "--all", "--check"])),
    },
    Step {
        name: "cargo clippy --workspace --all-targets --all-features -- -D warnings",
        run: |_| {
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
        name: "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --all-features --no-deps",
        run: |_| {
            workspace::run(
                workspace::cargo(["doc", "--workspace", "--all-features", "--no-deps"])
                    .env("RUSTDOCFLAGS", "-D warnings"),
            )
        },
    },
    Step {
        name: "cargo test --workspace --all-features --no-run",
        run: |_| it::build(),
    },
    Step {
        name: "start every backend's servers",
        run: |state| {
            state.servers = Some(servers::provide(Backend::All, Reuse::Environment)?);
            Ok(())
        },
    },
    Step {
        name: "cargo test --workspace --all-features --no-fail-fast (every suite, once)",
        run: |state| {
            let provided = state
                .servers
                .as_ref()
                .ok_or("the servers were not started")?;
            it::run_with(Backend::All, provided)
        },
    },
    Step {
        name: "stop the servers",
        run: |state| {
            drop(state.servers.take());
            Ok(())
        },
    },
    Step {
        name: "cargo deny check",
        run: |_| deny::check(),
    },
];

/// The load averages over 1, 5 and 15 minutes (`/proc/loadavg`), where the system has them.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
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
    let load_at_start = load_average();
    let mut state = State::default();
    let mut outcomes = Vec::with_capacity(STEPS.len());
    let mut failure = None;
    for step in STEPS {
        if failure.is_some() {
            outcomes.push(Outcome::Skipped);
            continue;
        }
        println!("\n==> {}", step.name);
        let step_started = Instant::now();
        let result = (step.run)(&mut state);
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

    // After a failure the servers may still run: stop them before the summary.
    drop(state);
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
    // Timings on a shared machine mean little without the load they were taken under.
    if let (Some(start), Some(end)) = (load_at_start, load_average()) {
        println!("  load average (1, 5, 15 min): {start} at the start, {end} at the end");
    }
    if let Some(message) = &failure {
        eprintln!("error: {message}");
    }
    println!("{passed} passed, {failed} failed");
    failure.is_none()
}
