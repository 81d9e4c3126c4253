//! The store over TLS against MySQL/MariaDB (`STATS_TEST_MYSQL_TLS_URL`, a URL without
//! `ssl-mode` of an administrator, of a server with TLS on whose certificate for the URL's host
//! is signed by a throwaway authority, `STATS_TEST_MYSQL_TLS_CA`); `cargo xtask it mysql`
//! starts one and sets both. Without the `tls` feature, the checks that a mode requiring TLS is
//! refused naming the feature.
#![cfg(feature = "mysql")]

// Only the helpers are used here, not the suites' macros.
#[allow(unused_macros, unused_imports)]
mod common;

#[cfg(feature = "tls")]
mod with_tls {
    use std::sync::Arc;

    use stats_backend_sql::{SqlConfig, SqlStore};
    use stats_core::Error;

    use super::common;

    const URL: &str = "STATS_TEST_MYSQL_TLS_URL";
    const CA: &str = "STATS_TEST_MYSQL_TLS_CA";

    fn admin_url() -> String {
        let url = common::url(URL, "mysql");
        assert!(!url.contains('?'), "{URL} must have no parameters: {url}");
        url
    }

    fn ca() -> String {
        common::url(CA, "mysql")
    }

    /// The administrator's URL with the user `user` (no password) instead, and `params`.
    fn url_of(user: &str, params: &str) -> String {
        let url = admin_url();
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{user}@{host}?{params}")
    }

    /// A user of its own that the server lets in only over TLS (`REQUIRE SSL`), with every
    /// right on the test database; a pool of the administrator (without TLS) to drop it.
    async fn tls_only_user(label: &str) -> (String, sqlx::MySqlPool) {
        let user = common::unique_prefix(label);
        let admin = sqlx::MySqlPool::connect(&format!("{}?ssl-mode=DISABLED", admin_url()))
            .await
            .expect("administrator connection");
        sqlx::query(&format!("CREATE USER '{user}'@'%' REQUIRE SSL"))
            .execute(&admin)
            .await
            .expect("CREATE USER");
        let database: String = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&admin)
            .await
            .expect("the URL's database");
        sqlx::query(&format!("GRANT ALL ON `{database}`.* TO '{user}'@'%'"))
            .execute(&admin)
            .await
            .expect("GRANT");
        (user, admin)
    }

    async fn drop_user(user: &str, admin: sqlx::MySqlPool) {
        sqlx::query(&format!("DROP USER '{user}'@'%'"))
            .execute(&admin)
            .await
            .expect("DROP USER");
        admin.close().await;
    }

    /// Writes a batch and a counter through a store at `url` and reads them back.
    async fn round_trip(url: &str) -> Arc<SqlStore> {
        let config = SqlConfig::from_url(url).expect("URL");
        let s = common::store_at(config, &common::unique_prefix("mytls")).await;
        stats_core::testkit::write_read_and_count(&*s, url).await;
        s
    }

    /// The store works as a user the server admits only over TLS, in every mode that uses TLS;
    /// the same user without TLS is turned away, so the check can fail.
    #[tokio::test]
    async fn every_tls_mode_writes_and_reads_over_tls() {
        let (user, admin) = tls_only_user("mytlsuser").await;
        let ca = ca();
        for params in [
            "ssl-mode=REQUIRED".to_owned(),
            format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
            format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        ] {
            let s = round_trip(&url_of(&user, &params)).await;
            s.drop_tables().await.unwrap();
            s.close().await;
        }
        let plain = SqlConfig::from_url(&url_of(&user, "ssl-mode=DISABLED")).unwrap();
        let refused = SqlStore::connect(plain).await;
        drop_user(&user, admin).await;
        let err = refused.expect_err("a REQUIRE SSL user without TLS");
        assert!(err.to_string().contains("denied"), "{err}");
    }

    /// Without the test authority the certificate is checked against the system's roots,
    /// which do not hold it.
    #[tokio::test]
    async fn an_untrusted_certificate_is_a_clear_error() {
        let url = format!("{}?ssl-mode=VERIFY_IDENTITY", admin_url());
        let err = SqlStore::connect(SqlConfig::from_url(&url).unwrap())
            .await
            .expect_err("a certificate signed by an unknown authority");
        stats_core::testkit::assert_untrusted_certificate(&err);
    }

    #[tokio::test]
    async fn a_missing_root_certificate_names_its_path() {
        let missing = format!("{}.missing", ca());
        let url = format!("{}?ssl-mode=VERIFY_CA&ssl-ca={missing}", admin_url());
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
        let err = SqlConfig::from_url("mysql://u@127.0.0.1:1/db?ssl-mode=REQUIRED").unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("`mysql-tls`"), "{err}");
    }
}
