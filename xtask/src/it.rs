//! `cargo xtask it <backend>`: the integration suites of a backend against real servers.
//!
//! Each backend's suites are the cargo commands in [`tests`]; [`crate::servers::provide`]
//! gives them their servers: a URL from the environment when set there
//! (`STATS_TEST_REDIS_URL`, `STATS_TEST_REDIS_CLUSTER_URLS`, `STATS_TEST_POSTGRES_URL`,
//! `STATS_TEST_MYSQL_URL`, `STATS_TEST_SQLITE_DIR`), else a throwaway server started for the
//! run and stopped after it. The variables are set on the child cargo only.
//!
//! Adding a backend means a variant in [`Backend`], an entry in [`Backend::EACH`], its cargo
//! commands in [`tests`] and its servers in [`crate::servers::provide`].

use std::collections::BTreeSet;

use clap::ValueEnum;

use crate::{
    Result, interrupt,
    servers::{self, Reuse},
    workspace,
};

/// A store backend whose suites `cargo xtask it` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// The in-process lock-free atomics backend (needs no server).
    Atomics,
    /// Redis, one server (`STATS_TEST_REDIS_URL`).
    Redis,
    /// Redis Cluster, three masters (`STATS_TEST_REDIS_CLUSTER_URLS`).
    RedisCluster,
    /// PostgreSQL (`STATS_TEST_POSTGRES_URL`).
    Postgres,
    /// MySQL or MariaDB; a throwaway MariaDB is started (`STATS_TEST_MYSQL_URL`).
    Mysql,
    /// SQLite, files in a temporary directory (`STATS_TEST_SQLITE_DIR`).
    Sqlite,
    /// Every backend listed here, one after the other.
    All,
}

impl Backend {
    /// Every concrete backend, in the order `all` runs them.
    pub(crate) const EACH: &[Backend] = &[
        Backend::Atomics,
        Backend::Redis,
        Backend::RedisCluster,
        Backend::Postgres,
        Backend::Mysql,
        Backend::Sqlite,
    ];

    /// The name used on the command line.
    pub(crate) fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |value| value.get_name().to_owned())
    }
}

/// The cargo commands (argument lists) that run the suites of `backend`, in order.
/// This table is the one place to change what each backend runs.
///
/// `stats-backend-redis` holds the suites of both Redis backends, each of which needs its own
/// variable, so each run picks its test targets; a unit test below checks that every test
/// target of a server-backed package is run by some entry.
fn tests(backend: Backend) -> Vec<Vec<&'static str>> {
    /// The start of every Redis command.
    const REDIS: [&str; 4] = ["test", "-p", "stats-backend-redis", "--all-features"];
    match backend {
        Backend::Atomics => vec![
            vec!["test", "-p", "stats-backend-atomics", "--all-features"],
            vec!["test", "-p", "stats-tests", "--all-features"],
        ],
        Backend::Redis => vec![
            [
                &REDIS[..],
                &[
                    "--lib", "--test", "single", "--test", "fault", "--test", "tls",
                ],
            ]
            .concat(),
            [&REDIS[..], &["--doc"]].concat(),
        ],
        Backend::RedisCluster => vec![[&REDIS[..], &["--test", "cluster"]].concat()],
        Backend::Postgres => vec![vec![
            "test",
            "-p",
            "stats-backend-sql",
            "--features",
            "postgres,tls",
        ]],
        Backend::Mysql => vec![vec![
            "test",
            "-p",
            "stats-backend-sql",
            "--features",
            "mysql,tls",
        ]],
        Backend::Sqlite => vec![vec![
            "test",
            "-p",
            "stats-backend-sql",
            "--features",
            "sqlite",
        ]],
        Backend::All => Backend::EACH.iter().flat_map(|&each| tests(each)).collect(),
    }
}

/// The packages whose tests need what `cargo xtask it` provides (every package the
/// server-backed suites in [`tests`] run), so the plain workspace test run leaves them out.
pub(crate) fn packages_needing_servers() -> BTreeSet<&'static str> {
    let plain: BTreeSet<_> = tests(Backend::Atomics)
        .iter()
        .filter_map(|args| package_of(args))
        .collect();
    tests(Backend::All)
        .iter()
        .filter_map(|args| package_of(args))
        .filter(|package| !plain.contains(package))
        .collect()
}

/// The package a cargo argument list selects with `-p`/`--package`.
fn package_of<'a>(args: &[&'a str]) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == "-p" || pair[0] == "--package")
        .map(|pair| pair[1])
}

/// Runs the suites of `backend`; for [`Backend::All`] runs every backend, even after one fails,
/// and fails naming the backends that failed.
pub(crate) fn run(backend: Backend) -> Result {
    if backend != Backend::All {
        return run_one(backend);
    }
    let mut failed = Vec::new();
    for &each in Backend::EACH {
        if interrupt::requested() {
            failed.push(format!("{} (interrupted)", each.name()));
            continue;
        }
        println!("--> it {}", each.name());
        if let Err(err) = run_one(each) {
            eprintln!("it {}: FAILED: {err}", each.name());
            failed.push(each.name());
        }
    }
    if failed.is_empty() {
        println!("it all: every backend passed");
        Ok(())
    } else {
        Err(format!("integration suites failed for: {}", failed.join(", ")).into())
    }
}

/// Runs the suites of one concrete backend with its servers, stopping them afterwards.
fn run_one(backend: Backend) -> Result {
    let suites = tests(backend);
    let provided = servers::provide(backend, Reuse::Environment)?;
    for args in suites {
        let mut cmd = workspace::cargo(args);
        cmd.env("RUST_BACKTRACE", "1");
        for (name, value) in provided.env() {
            cmd.env(name, value);
        }
        workspace::run(&mut cmd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Whether a cargo argument list runs every integration test target of its package.
    fn runs_every_test_target(args: &[&str]) -> bool {
        const SELECTING: &[&str] = &[
            "--lib",
            "--bin",
            "--bins",
            "--test",
            "--example",
            "--examples",
            "--bench",
            "--benches",
            "--doc",
        ];
        args.contains(&"--tests")
            || args.contains(&"--all-targets")
            || !args.iter().any(|arg| SELECTING.contains(arg))
    }

    /// The `tests/*.rs` targets of the server-backed packages that no entry of [`tests`] runs.
    fn unrun_test_targets(metadata: &Value) -> Vec<String> {
        let all = tests(Backend::All);
        let mut unrun = Vec::new();
        for package in metadata["packages"].as_array().into_iter().flatten() {
            let Some(name) = package["name"].as_str() else {
                continue;
            };
            let entries: Vec<_> = all
                .iter()
                .filter(|args| package_of(args) == Some(name))
                .collect();
            if entries.is_empty() || entries.iter().any(|args| runs_every_test_target(args)) {
                continue;
            }
            let selected: Vec<&str> = entries
                .iter()
                .flat_map(|args| args.windows(2))
                .filter(|pair| pair[0] == "--test")
                .map(|pair| pair[1])
                .collect();
            for target in package["targets"].as_array().into_iter().flatten() {
                let is_test = target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "test"));
                let target = target["name"].as_str().unwrap_or_default();
                if is_test && !selected.contains(&target) {
                    unrun.push(format!("{name}: tests/{target}.rs"));
                }
            }
        }
        unrun
    }

    #[test]
    fn every_test_target_of_a_server_backed_package_runs_in_some_backend() {
        let unrun = unrun_test_targets(&workspace::metadata().unwrap());
        assert!(
            unrun.is_empty(),
            "add these to `it::tests` (they would run in no backend): {unrun:?}"
        );
    }

    #[test]
    fn test_targets_left_out_are_found() {
        let metadata = serde_json::json!({"packages": [{
            "name": "stats-backend-redis",
            "targets": [
                {"name": "stats_backend_redis", "kind": ["lib"]},
                {"name": "single", "kind": ["test"]},
                {"name": "cluster", "kind": ["test"]},
                {"name": "new_one", "kind": ["test"]},
            ],
        }]});
        assert_eq!(
            unrun_test_targets(&metadata),
            ["stats-backend-redis: tests/new_one.rs"]
        );
        assert!(runs_every_test_target(&[
            "test",
            "-p",
            "x",
            "--all-features"
        ]));
        assert!(!runs_every_test_target(&["test", "-p", "x", "--test", "a"]));
    }

    #[test]
    fn all_runs_every_concrete_backend() {
        let concrete: Vec<_> = Backend::value_variants()
            .iter()
            .copied()
            .filter(|backend| *backend != Backend::All)
            .collect();
        assert_eq!(concrete, Backend::EACH);
    }

    #[test]
    fn backends_are_named_in_kebab_case() {
        assert_eq!(Backend::Atomics.name(), "atomics");
        assert_eq!(Backend::RedisCluster.name(), "redis-cluster");
        assert_eq!(Backend::from_str("all", false), Ok(Backend::All));
        assert_eq!(Backend::from_str("mysql", false), Ok(Backend::Mysql));
    }

    #[test]
    fn every_backend_runs_at_least_one_package() {
        for &backend in Backend::EACH {
            let suites = tests(backend);
            assert!(!suites.is_empty(), "{backend:?}");
            for args in suites {
                assert_eq!(args[0], "test", "{args:?}");
                assert!(package_of(&args).is_some(), "{args:?}");
            }
        }
    }

    #[test]
    fn the_server_backed_packages_are_left_out_of_the_plain_run() {
        assert_eq!(
            packages_needing_servers().into_iter().collect::<Vec<_>>(),
            ["stats-backend-redis", "stats-backend-sql"]
        );
    }

    #[test]
    fn packages_are_read_from_p_and_package() {
        assert_eq!(package_of(&["test", "-p", "a"]), Some("a"));
        assert_eq!(package_of(&["test", "--package", "b", "--all"]), Some("b"));
        assert_eq!(package_of(&["test", "--workspace"]), None);
    }
}
