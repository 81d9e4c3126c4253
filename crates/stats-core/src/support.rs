//! Small helpers the backends share.

/// `url` with the password of its user part (`scheme://user:password@host...`) replaced by
/// `***`, for error messages and `Debug` output. A URL without a password in its user part is
/// returned as it is; so is the rest of the URL, query included (a backend whose URLs can carry
/// a password elsewhere redacts that itself).
///
/// ```
/// use stats_core::support::redact_url;
///
/// assert_eq!(redact_url("redis://u:hunter2@h:6379/0"), "redis://u:***@h:6379/0");
/// assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
/// ```
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_only_the_password_of_the_user_part() {
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("redis://:hunter2@h/"), "redis://:***@h/");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?password=x"),
            "postgres://h/db?password=x"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("h@x://y"), "h@x://y");
        // The last `@` ends the user part: a password may contain `@`.
        assert_eq!(redact_url("redis://u:p@ss@h/"), "redis://u:***@h/");
    }
}
