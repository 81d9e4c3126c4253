//! The store over TLS against PostgreSQL (`STATS_TEST_POSTGRES_TLS_URL`, a URL without
//! `sslmode`, of a server with `ssl=on` whose certificate for the URL's host is signed by a
//! throwaway authority, `STATS_TEST_POSTGRES_TLS_CA`); `cargo xtask it postgres` starts one
//! and sets both. Without the `tls` feature, the checks that a mode requiring TLS is refused
//! naming the feature.
#![cfg(feature = "postgres")]

// Only the helpers are used here, not the suites' macros.
#[allow(unused_macros, unused_imports)]
mod common;

#[cfg(feature = "tls")]
mod with_tls {
    use std::sync::Arc;

    use sqlx::Row as _;
    use stats_backend_sql::{SqlConfig, SqlStore};
    use stats_core::Error;

    use super::common;

    const URL: &str = "STATS_TEST_POSTGRES_TLS_URL";
    const CA: &str = "STATS_TEST_POSTGRES_TLS_CA";

    /// The server's URL with `params` (`sslmode=...&...`) and an `application_name` of its
    /// own, which tells this store's connections apart on the server.
    fn url_with(params: &str, application: &str) -> String {
        let url = common::url(URL, "postgres");
        assert!(!url.contains('?'), "{URL} must have no parameters: {url}");
        format!("{url}?{params}&application_name={application}")
    }

    fn ca() -> String {
        common::url(CA, "postgres")
    }

    /// Whether the server's connections of `application` use TLS, as the server sees them:
    /// `(connections, how many of them use TLS)`, asked over a connection without TLS.
    async fn server_view(application: &str) -> (i64, i64) {
        let plain = format!("{}?sslmode=disable", common::url(URL, "postgres"));
        let pool = sqlx::PgPool::connect(&plain)
            .await
            .expect("plain connection");
        let row = sqlx::query(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
        )
        .bind(application)
        .fetch_one(&pool)
        .await
        .expect("pg_stat_ssl");
        pool.close().await;
        (row.get(0), row.get(1))
    }

    /// Writes a batch and a counter through a store at `url` and reads them back.
    async fn round_trip(url: &str) -> Arc<SqlStore> {
        let config = SqlConfig::from_url(url).expect("URL");
        let s = common::store_at(config, &common::unique_prefix("pgtls")).await;
        stats_core::testkit::write_read_and_count(&*s, url).await;
        s
    }

    #[tokio::test]
    async fn every_tls_mode_writes_and_reads_over_tls() {
        let ca = ca();
        for (name, params) in [
            ("require", "sslmode=require".to_owned()),
            ("verifyca", format!("sslmode=verify-ca&sslrootcert={ca}")),
            (
                "verifyfull",
                format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
        ] {
            let application = common::unique_prefix(name);
            let url = url_with(&params, &application);
            let s = round_trip(&url).await;
            let (connections, tls) = server_view(&application).await;
            assert!(connections >= 1, "{url}: no connection of the store seen");
            assert_eq!(tls, connections, "{url}: a connection without TLS");
            s.drop_tables().await.unwrap();
            s.close().await;
        }
    }

    /// The same check sees a connection without TLS, so it can fail.
    #[tokio::test]
    async fn the_server_view_tells_plain_connections_apart() {
        let application = common::unique_prefix("pgplain");
        let url = url_with("sslmode=disable", &application);
        let s = round_trip(&url).await;
        let (connections, tls) = server_view(&application).await;
        assert!(connections >= 1 && tls == 0, "{connections} {tls}");
        s.drop_tables().await.unwrap();
        s.close().await;
    }

    /// Without the test authority the certificate is checked against the system's roots,
    /// which do not hold it.
    #[tokio::test]
    async fn an_untrusted_certificate_is_a_clear_error() {
        let url = url_with("sslmode=verify-full", "pguntrusted");
        let config = SqlConfig::from_url(&url).unwrap();
        let err = SqlStore::connect(config)
            .await
            .expect_err("a certificate signed by an unknown authority");
        stats_core::testkit::assert_untrusted_certificate(&err);
    }

    #[tokio::test]
    async fn a_missing_root_certificate_names_its_path() {
        let missing = format!("{}.missing", ca());
        let url = url_with(
            &format!("sslmode=verify-full&sslrootcert={missing}"),
            "pgmissing",
        );
        let err = SqlConfig::from_url(&url).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains(&missing)),
            "{err}"
        );
    }
}

#[cfg(not(feature = "tls"))]
mod without_tls {
    use stats_backend_sql::SqlConfig;
    use stats_core::Error;

    #[test]
    fn a_mode_requiring_tls_names_the_feature_to_enable() {
        for url in [
            "postgres://u@127.0.0.1:1/db?sslmode=require",
            "postgres://u@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/x.pem",
        ] {
            let err = SqlConfig::from_url(url).unwrap_err();
            assert!(
                matches!(err, Error::Unsupported { .. }) || matches!(err, Error::InvalidInput(_)),
                "{url}: {err}"
            );
        }
        let err = SqlConfig::from_url("postgres://u@127.0.0.1:1/db?sslmode=require").unwrap_err();
        assert!(err.to_string().contains("`postgres-tls`"), "{err}");
    }
}
