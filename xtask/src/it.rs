//! `cargo xtask it <backend>`: the integration suites of a backend against real servers.
//!
//! Every test build of the xtask is `cargo test --workspace --all-features` ([`CARGO_TEST`]):
//! one feature set, so the workspace compiles once and CI, `it all` and `it <backend>` share
//! every artifact. `it <backend>` selects the backend's test targets from [`suites`] with
//! `--test`; `it all` (and CI) runs the whole workspace once, every suite exactly once, with
//! every backend's servers.
//!
//! [`crate::servers::provide`] gives the suites their servers: a URL from the environment when
//! set there (`STATS_TEST_REDIS_URL`, `STATS_TEST_REDIS_CLUSTER_URLS`,
//! `STATS_TEST_POSTGRES_URL`, `STATS_TEST_MYSQL_URL`, `STATS_TEST_SQLITE_DIR`,
//! `STATS_TEST_MONGO_URL`), else a throwaway server started for the run and stopped after it.
//! The variables are set on the child cargo only.
//!
//! Adding a backend means a variant in [`Backend`], an entry in [`Backend::EACH`], its test
//! targets in [`suites`] and its servers in [`crate::servers::provide`].

use clap::ValueEnum;

use crate::{
    Result,
    servers::{self, Provided, Reuse},
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
    /// MongoDB; a throwaway MongoDB-wire server (mongoeco, in Python) is started
    /// (`STATS_TEST_MONGO_URL`).
    Mongo,
    /// Not a store: the `stats serve` dashboard in headless Chromium (`STATS_TEST_CHROMIUM`;
    /// the Debian package `chromium` is installed where missing).
    Dashboard,
    /// Every backend: all their servers at once, and the whole workspace's tests.
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
        Backend::Mongo,
        Backend::Dashboard,
    ];

    /// The name used on the command line.
    pub(crate) fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |value| value.get_name().to_owned())
    }
}

/// The arguments every test build and run of the xtask starts with. CI and `it` build the
/// same units with them (the same packages selected, the same features, so the same feature
/// unification): `it <backend>` after CI, or the other way round, recompiles nothing.
pub(crate) const CARGO_TEST: [&str; 3] = ["test", "--workspace", "--all-features"];

/// An integration test target (`tests/<test>.rs` of `package`) that needs a backend's servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Suite {
    /// The package the target belongs to.
    pub(crate) package: &'static str,
    /// The test target's name (the file name without `.rs`), unique in the workspace.
    pub(crate) test: &'static str,
}

/// Shorthand for a table entry of [`SUITES`].
const fn suite(package: &'static str, test: &'static str) -> Suite {
    Suite { package, test }
}

/// The integration test targets that need servers, each with the backend whose servers it
/// needs: `cargo xtask it <backend>` runs that backend's entries. This table is the one place
/// to change what each backend runs.
///
/// Unit and doc tests need no server: they run in `cargo test --workspace --all-features`
/// (`it all`, CI), as do these. A unit test below checks that every test target of a package
/// named here is listed exactly once, and that each name selects only its own target.
const SUITES: &[(Backend, Suite)] = {
    const ATOMICS: &str = "stats-backend-atomics";
    const CROSS: &str = "stats-tests";
    const REDIS: &str = "stats-backend-redis";
    const SQL: &str = "stats-backend-sql";
    const MONGO: &str = "stats-backend-mongo";
    const BUFFER: &str = "stats-buffer";
    const RULES: &str = "stats-rules";
    const CLI: &str = "stats-cli";
    const METRICS: &str = "stats-metrics";
    &[
        (Backend::Atomics, suite(ATOMICS, "conformance")),
        (Backend::Atomics, suite(CROSS, "through_the_umbrella")),
        (
            Backend::Atomics,
            suite(CROSS, "suite_catches_broken_stores"),
        ),
        (Backend::Redis, suite(REDIS, "single")),
        (Backend::Redis, suite(REDIS, "fault")),
        (Backend::Redis, suite(REDIS, "tls")),
        (Backend::Redis, suite(REDIS, "trifle_redis")),
        // Runs its own redis-server and PostgreSQL, to stop and restart them.
        (Backend::Redis, suite(BUFFER, "buffer_outage")),
        (Backend::RedisCluster, suite(REDIS, "cluster")),
        (Backend::RedisCluster, suite(REDIS, "trifle_redis_cluster")),
        (Backend::Postgres, suite(SQL, "postgres")),
        (Backend::Postgres, suite(SQL, "postgres_tls")),
        // The Trifle layout on PostgreSQL, and on SQLite files of its own.
        (Backend::Postgres, suite(SQL, "trifle")),
        (Backend::Mysql, suite(SQL, "mysql")),
        (Backend::Mysql, suite(SQL, "mysql_tls")),
        (Backend::Mysql, suite(SQL, "trifle_mysql")),
        (Backend::Sqlite, suite(SQL, "sqlite")),
        (Backend::Mongo, suite(MONGO, "modes")),
        (Backend::Mongo, suite(MONGO, "golden")),
        (Backend::Mongo, suite(MONGO, "outage")),
        (Backend::Atomics, suite(BUFFER, "keyed")),
        (Backend::Atomics, suite(BUFFER, "load")),
        (Backend::Atomics, suite(BUFFER, "coalesce")),
        (Backend::Atomics, suite(BUFFER, "buffered_tracker")),
        (Backend::Atomics, suite(BUFFER, "coalescing")),
        (Backend::Redis, suite(BUFFER, "coalesce_redis")),
        (Backend::Sqlite, suite(BUFFER, "coalesce_sqlite")),
        (Backend::Atomics, suite(RULES, "rules_atomics")),
        (Backend::Redis, suite(RULES, "rules_redis")),
        (Backend::Postgres, suite(RULES, "rules_postgres")),
        (Backend::Sqlite, suite(RULES, "rules_sqlite")),
        // SQLite files of its own, and one round trip on Redis.
        (Backend::Redis, suite(CLI, "http")),
        // Each on SQLite files of its own and on Redis.
        (Backend::Redis, suite(CLI, "import")),
        (Backend::Redis, suite(CLI, "demo")),
        (Backend::Sqlite, suite(CLI, "cli_sqlite")),
        // The `stats` crate's `metrics_service` example (built by `cargo test --workspace
        // --all-features --no-run`, not by a `--test` run) on a SQLite file of its own.
        (Backend::Sqlite, suite(CLI, "metrics_example")),
        (Backend::Redis, suite(CLI, "cli_redis")),
        (Backend::Dashboard, suite(CLI, "dashboard")),
        // On the in-process store and on Redis.
        (Backend::Redis, suite(METRICS, "metrics_values")),
        // Redis behind the testkit's fault proxy.
        (Backend::Redis, suite(METRICS, "metrics_outage")),
        (Backend::Atomics, suite(METRICS, "metrics_labels")),
        (Backend::Atomics, suite(METRICS, "metrics_concurrency")),
        (Backend::Atomics, suite(METRICS, "metrics_exposition")),
        // The process-wide recorder: one test in its own binary.
        (Backend::Atomics, suite(METRICS, "metrics_global")),
    ]
};

/// The entries of [`SUITES`] for `backend`, in table order; none for [`Backend::All`], which
/// runs the whole workspace instead (see [`command`]).
pub(crate) fn suites(backend: Backend) -> Vec<Suite> {
    SUITES
        .iter()
        .filter(|(each, _)| *each == backend)
        .map(|(_, suite)| *suite)
        .collect()
}

/// The cargo arguments that run the suites of `backend`: [`CARGO_TEST`] with `--no-fail-fast`
/// (every suite reports, a failure is not hidden behind an earlier one), then the backend's
/// `--test` targets; for [`Backend::All`] nothing more: every unit, integration and doc test
/// of every package, each exactly once.
pub(crate) fn command(backend: Backend) -> Vec<&'static str> {
    let mut args = CARGO_TEST.to_vec();
    args.push("--no-fail-fast");
    for each in suites(backend) {
        args.extend(["--test", each.test]);
    }
    args
}

/// `cargo test --workspace --all-features --no-run`: builds every test binary (the units the
/// runs of [`command`] use), printing cargo's progress, without running anything.
pub(crate) fn build() -> Result {
    let mut cmd = workspace::cargo(CARGO_TEST);
    cmd.arg("--no-run");
    workspace::run(&mut cmd)
}

/// Runs the suites of `backend` with the servers of `backend`: from the environment where the
/// `STATS_TEST_*` variables are set, else started here and stopped afterwards.
pub(crate) fn run(backend: Backend) -> Result {
    match backend {
        Backend::All => {
            println!("--> it all: every test of the workspace, every backend's servers")
        }
        _ => {
            let shown: Vec<String> = suites(backend)
                .iter()
                .map(|suite| format!("{} tests/{}.rs", suite.package, suite.test))
                .collect();
            // Without a `--test`, the command would run every test of the workspace.
            if shown.is_empty() {
                return Err(format!(
                    "no test suites are listed for {} yet (`cargo xtask servers {0}` starts \
                     its servers)",
                    backend.name()
                )
                .into());
            }
            println!("--> it {}: {}", backend.name(), shown.join(", "));
        }
    }
    let provided = servers::provide(backend, Reuse::Environment)?;
    run_with(backend, &provided)
}

/// Runs the suites of `backend` (see [`command`]) with `provided`'s variables set on cargo.
pub(crate) fn run_with(backend: Backend, provided: &Provided) -> Result {
    let mut cmd = workspace::cargo(command(backend));
    cmd.env("RUST_BACKTRACE", "1");
    for (name, value) in provided.env() {
        cmd.env(name, value);
    }
    workspace::run(&mut cmd)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The names of the `test` targets (`tests/*.rs`) of each package in `cargo metadata`.
    fn test_targets(metadata: &Value) -> Vec<(&str, &str)> {
        let mut found = Vec::new();
        for package in metadata["packages"].as_array().into_iter().flatten() {
            let Some(name) = package["name"].as_str() else {
                continue;
            };
            for target in package["targets"].as_array().into_iter().flatten() {
                let is_test = target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "test"));
                if let (true, Some(target)) = (is_test, target["name"].as_str()) {
                    found.push((name, target));
                }
            }
        }
        found
    }

    /// What is wrong with the table `backends` (each backend with its suites) for the
    /// workspace described by `metadata`: targets listed that do not exist, names that select
    /// targets of other packages too, targets listed twice, and test targets of a listed
    /// package that no backend runs.
    fn table_problems(listed: &[(Backend, Suite)], metadata: &Value) -> Vec<String> {
        let targets = test_targets(metadata);
        let mut problems = Vec::new();
        for (at, (backend, suite)) in listed.iter().enumerate() {
            let Suite { package, test } = *suite;
            if !targets.contains(&(package, test)) {
                problems.push(format!(
                    "{}: {package} has no test target `{test}`",
                    backend.name()
                ));
            }
            let others: Vec<&str> = targets
                .iter()
                .filter(|(other, name)| *name == test && *other != package)
                .map(|(other, _)| *other)
                .collect();
            if !others.is_empty() {
                problems.push(format!(
                    "{}: `--test {test}` also selects the target of {}",
                    backend.name(),
                    others.join(", ")
                ));
            }
            if let Some((first, _)) = listed[..at].iter().find(|(_, seen)| seen == suite) {
                problems.push(format!(
                    "{package}: tests/{test}.rs is listed under both {} and {}",
                    first.name(),
                    backend.name()
                ));
            }
        }
        for (package, test) in targets {
            let package_listed = listed.iter().any(|(_, suite)| suite.package == package);
            let target_listed = listed
                .iter()
                .any(|(_, suite)| suite.package == package && suite.test == test);
            if package_listed && !target_listed {
                problems.push(format!("{package}: tests/{test}.rs runs in no backend"));
            }
        }
        problems
    }

    #[test]
    fn every_test_target_of_a_server_backed_package_runs_in_exactly_one_backend() {
        let problems = table_problems(SUITES, &workspace::metadata().unwrap());
        assert!(problems.is_empty(), "fix `it::suites`: {problems:?}");
    }

    #[test]
    fn table_problems_are_found() {
        let metadata = serde_json::json!({"packages": [
            {
                "name": "stats-backend-redis",
                "targets": [
                    {"name": "stats_backend_redis", "kind": ["lib"]},
                    {"name": "single", "kind": ["test"]},
                    {"name": "cluster", "kind": ["test"]},
                    {"name": "new_one", "kind": ["test"]},
                ],
            },
            {
                "name": "stats-cli",
                "targets": [{"name": "single", "kind": ["test"]}],
            },
        ]});
        let good = (
            Backend::RedisCluster,
            suite("stats-backend-redis", "cluster"),
        );
        let bad = [
            (Backend::Redis, suite("stats-backend-redis", "single")),
            (Backend::Redis, suite("stats-backend-redis", "cluster")),
            (Backend::Redis, suite("stats-backend-redis", "gone")),
        ];
        assert_eq!(
            table_problems(&[&[good][..], &bad].concat(), &metadata),
            [
                "redis: `--test single` also selects the target of stats-cli",
                "stats-backend-redis: tests/cluster.rs is listed under both redis-cluster and redis",
                "redis: stats-backend-redis has no test target `gone`",
                "stats-backend-redis: tests/new_one.rs runs in no backend",
            ]
        );
        // A package no backend names is not checked: its tests run in the workspace run.
        assert_eq!(
            table_problems(&[good], &metadata),
            [
                "stats-backend-redis: tests/single.rs runs in no backend",
                "stats-backend-redis: tests/new_one.rs runs in no backend",
            ]
        );
    }

    #[test]
    fn every_run_builds_what_ci_builds() {
        for backend in Backend::value_variants() {
            let args = command(*backend);
            assert_eq!(args[..3], CARGO_TEST, "{backend:?}");
            // Only a run option and target selection follow: nothing that changes a unit.
            assert_eq!(args[3], "--no-fail-fast", "{backend:?}");
            for pair in args[4..].chunks(2) {
                assert!(
                    pair.len() == 2 && pair[0] == "--test",
                    "{backend:?}: {args:?}"
                );
            }
        }
        assert_eq!(
            command(Backend::All),
            ["test", "--workspace", "--all-features", "--no-fail-fast"]
        );
        assert_eq!(
            command(Backend::Redis),
            [
                "test",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
                "--test",
                "single",
                "--test",
                "fault",
                "--test",
                "tls",
                "--test",
                "trifle_redis",
                "--test",
                "buffer_outage",
                "--test",
                "coalesce_redis",
                "--test",
                "rules_redis",
                "--test",
                "http",
                "--test",
                "import",
                "--test",
                "demo",
                "--test",
                "cli_redis",
                "--test",
                "metrics_values",
                "--test",
                "metrics_outage"
            ]
        );
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
    fn every_backend_runs_at_least_one_suite() {
        for &backend in Backend::EACH {
            assert!(!suites(backend).is_empty(), "{backend:?}");
        }
    }
}
