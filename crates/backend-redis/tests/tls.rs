//! The store over TLS, against a TLS-only Redis server (`STATS_TEST_REDIS_TLS_URL`, a
//! `rediss://` URL) whose certificate is signed by a throwaway authority
//! (`STATS_TEST_REDIS_TLS_CA`, a PEM file); `cargo xtask it redis` starts one and sets both.
//! Without the `tls` feature, the checks that a `rediss://` URL is refused naming it.

mod common;

#[cfg(feature = "tls")]
mod with_tls {
    use std::sync::Arc;

    use stats_backend_redis::{RedisConfig, RedisStore};
    use stats_core::{CounterStore, Error};

    use super::common;

    const URL: &str = "STATS_TEST_REDIS_TLS_URL";
    const CA: &str = "STATS_TEST_REDIS_TLS_CA";

    /// A configuration for the TLS server trusting its authority, under a fresh prefix.
    fn config() -> RedisConfig {
        RedisConfig::single(common::url(URL))
            .tls_root_certificate_file(common::url(CA))
            .expect("the test CA")
            .key_prefix(&stats_core::testkit::unique("tls"))
            .expect("prefix")
    }

    async fn store() -> Arc<RedisStore> {
        Arc::new(
            RedisStore::connect(config())
                .await
                .expect("connect over TLS"),
        )
    }

    // The whole conformance suite, over TLS.
    stats_core::metric_store_tests!(store);
    stats_core::counter_store_tests!(store);

    #[tokio::test]
    async fn a_batch_a_read_and_a_counter_go_over_tls() {
        let url = common::url(URL);
        assert!(
            url.starts_with("rediss://"),
            "{URL} is not a rediss:// URL: {url}"
        );
        let s = store().await;
        stats_core::testkit::write_read_and_count(&*s, &url).await;
        assert_eq!(s.get("jobs", "done").await.unwrap(), Some(3));
    }

    /// The server speaks only TLS: the same address without TLS does not answer, so the
    /// checks above did go over TLS.
    #[tokio::test]
    async fn the_tls_port_refuses_plain_connections() {
        let plain = common::url(URL).replacen("rediss://", "redis://", 1);
        let config = RedisConfig::single(plain.clone())
            .connection_timeout(std::time::Duration::from_millis(500))
            .response_timeout(std::time::Duration::from_millis(500));
        let err = RedisStore::connect(config)
            .await
            .expect_err("a plain connection to the TLS port");
        assert!(err.is_retryable(), "{plain}: {err}");
    }

    /// Without the test authority the server's certificate is checked against the system's
    /// roots, which do not hold it: a clear, non-retryable TLS error.
    #[tokio::test]
    async fn an_untrusted_certificate_is_a_clear_error() {
        let config = RedisConfig::single(common::url(URL))
            .key_prefix(&stats_core::testkit::unique("tls"))
            .unwrap();
        let err = RedisStore::connect(config)
            .await
            .expect_err("a certificate signed by an unknown authority");
        stats_core::testkit::assert_untrusted_certificate(&err);
    }

    #[tokio::test]
    async fn a_missing_or_bad_root_certificate_names_its_path() {
        let missing = format!("{}.missing", common::url(CA));
        let err = RedisConfig::single(common::url(URL))
            .tls_root_certificate_file(&missing)
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains(&missing)),
            "{err}"
        );

        let dir = std::env::temp_dir().join(stats_core::testkit::unique("redis-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("not-a-certificate.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = RedisConfig::single(common::url(URL))
            .tls_root_certificate_file(&garbage)
            .unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains(&*garbage.to_string_lossy())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_root_certificate_for_a_plain_url_is_refused() {
        let config = RedisConfig::single("redis://127.0.0.1:1/")
            .tls_root_certificate_file(common::url(CA))
            .unwrap();
        let err = RedisStore::connect(config).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("not a rediss://")),
            "{err}"
        );
    }
}

#[cfg(not(feature = "tls"))]
mod without_tls {
    use stats_backend_redis::{RedisConfig, RedisStore};
    use stats_core::Error;

    #[tokio::test]
    async fn a_rediss_url_names_the_feature_to_enable() {
        let err = RedisConfig::from_url("rediss://127.0.0.1:1/").unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("`redis-tls`"), "{err}");
        let err = RedisStore::connect(RedisConfig::single("rediss://127.0.0.1:1/"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("`redis-tls`"), "{err}");
    }
}
