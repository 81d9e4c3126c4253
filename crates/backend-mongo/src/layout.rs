//! Where a [`Key`] lives: its identifier document in each [`IdMode`], and the filters that
//! select a metric's or a granularity's documents.

use mongodb::bson::{Bson, DateTime, Document, Regex, doc};
use stats_core::{Error, Granularity, Key, NameKind, Result, Slot};

use crate::config::IdMode;

/// The regular expression of a granularity string (`1h`, `15m`, `1mo`).
const GRANULARITY_RE: &str = "[0-9]+(?:s|m|h|d|w|mo|q|y)";

/// The identifier layout of one store: mode and separator.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) mode: IdMode,
    pub(crate) separator: String,
}

/// What identifies a document once read back: the fields of its identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Ident {
    key: String,
    granularity: Option<String>,
    at: Option<i64>,
}

impl Layout {
    /// Checks that a metric can be laid out: in the joined modes it must not contain the
    /// separator (the joined key would not split back in one way).
    pub(crate) fn check_metric(&self, metric: &str) -> Result<()> {
        if self.mode != IdMode::Separated && metric.contains(self.separator.as_str()) {
            return Err(Error::invalid_name(
                NameKind::Metric,
                metric,
                format!(
                    "contains the separator {:?} of this MongoDB store's joined identifiers",
                    self.separator
                ),
            ));
        }
        Ok(())
    }

    /// Checks a key: its metric, and a bucket start that a BSON date can hold (modes that
    /// store it as a date).
    pub(crate) fn check_key(&self, key: &Key) -> Result<()> {
        self.check_metric(key.metric())?;
        if let Some(start) = key.start() {
            self.date(start)?;
        }
        Ok(())
    }

    /// A bucket start as a BSON date (milliseconds).
    fn date(&self, start: i64) -> Result<Option<DateTime>> {
        if self.mode == IdMode::Full {
            return Ok(None);
        }
        start
            .checked_mul(1000)
            .map(|ms| Some(DateTime::from_millis(ms)))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "bucket start {start} is out of the range of a BSON date (identifier mode {})",
                    self.mode
                ))
            })
    }

    fn joined(&self, parts: &[&str]) -> String {
        parts.join(&self.separator)
    }

    /// The identifier document of a key: the filter that finds it, and the fields an upsert
    /// writes into a new document. Call [`Layout::check_key`] first.
    pub(crate) fn identity(&self, key: &Key) -> Result<Document> {
        let metric = key.metric();
        Ok(match key.slot() {
            Slot::Status => match self.mode {
                IdMode::Full => doc! {"key": metric},
                IdMode::Partial => doc! {"key": metric, "at": Bson::Null},
                IdMode::Separated => {
                    doc! {"key": metric, "granularity": Bson::Null, "at": Bson::Null}
                }
            },
            Slot::Bucket { granularity, start } => {
                let g = granularity.to_string();
                match self.mode {
                    IdMode::Full => doc! {"key": self.joined(&[metric, &g, &start.to_string()])},
                    IdMode::Partial => {
                        doc! {"key": self.joined(&[metric, &g]), "at": self.date(start)?}
                    }
                    IdMode::Separated => {
                        doc! {"key": metric, "granularity": g, "at": self.date(start)?}
                    }
                }
            }
        })
    }

    /// The identifier of a key, to match read documents against.
    pub(crate) fn ident(&self, key: &Key) -> Result<Ident> {
        Ok(ident_of(&self.identity(key)?))
    }

    /// The filter that finds the documents of one metric and granularity at the given starts
    /// (one index range in `partial` and `separated`, an `$in` of keys in `full`).
    pub(crate) fn range_filter(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Document> {
        let g = granularity.to_string();
        let (Some(first), Some(last)) = (starts.first(), starts.last()) else {
            return Ok(doc! {"_id": {"$in": []}});
        };
        Ok(match self.mode {
            IdMode::Full => {
                let keys: Vec<String> = starts
                    .iter()
                    .map(|s| self.joined(&[metric, &g, &s.to_string()]))
                    .collect();
                doc! {"key": {"$in": keys}}
            }
            IdMode::Partial => doc! {
                "key": self.joined(&[metric, &g]),
                "at": {"$gte": self.date(*first)?, "$lte": self.date(*last)?},
            },
            IdMode::Separated => doc! {
                "key": metric,
                "granularity": g,
                "at": {"$gte": self.date(*first)?, "$lte": self.date(*last)?},
            },
        })
    }

    /// The filter of every document of a metric: its buckets of every granularity and its
    /// status, and nothing of another metric (also not of one whose name starts with it).
    pub(crate) fn metric_filter(&self, metric: &str) -> Document {
        let m = escape_regex(metric);
        let sep = escape_regex(&self.separator);
        match self.mode {
            IdMode::Full => doc! {"$or": [
                {"key": metric},
                {"key": Regex {
                    pattern: format!("^{m}{sep}{GRANULARITY_RE}{sep}-?[0-9]+$"),
                    options: String::new(),
                }},
            ]},
            IdMode::Partial => doc! {"$or": [
                {"key": metric, "at": Bson::Null},
                {"key": Regex {
                    pattern: format!("^{m}{sep}{GRANULARITY_RE}$"),
                    options: String::new(),
                }},
            ]},
            IdMode::Separated => doc! {"key": metric},
        }
    }

    /// The filter of the buckets of `granularity` of every metric; in `full` mode it selects
    /// by key only, and the caller compares the starts ([`Layout::start_of_full_key`]).
    pub(crate) fn granularity_filter(&self, granularity: Granularity, before: i64) -> Document {
        let g = escape_regex(&granularity.to_string());
        let sep = escape_regex(&self.separator);
        // A start before any date a BSON date holds selects nothing; after, everything.
        let before_date = DateTime::from_millis(before.saturating_mul(1000));
        match self.mode {
            IdMode::Full => doc! {"key": Regex {
                pattern: format!("{sep}{g}{sep}-?[0-9]+$"),
                options: String::new(),
            }},
            IdMode::Partial => doc! {
                "key": Regex { pattern: format!("{sep}{g}$"), options: String::new() },
                "at": {"$lt": before_date},
            },
            IdMode::Separated => doc! {
                "granularity": granularity.to_string(),
                "at": {"$lt": before_date},
            },
        }
    }

    /// The start of a bucket key in `full` mode written for `granularity` (`None` for a key
    /// that is not one).
    pub(crate) fn start_of_full_key(&self, key: &str, granularity: Granularity) -> Option<i64> {
        let suffix = format!("{}{granularity}{}", self.separator, self.separator);
        let at = key.rfind(&suffix)?;
        key[at + suffix.len()..].parse().ok()
    }
}

/// The identifier of a read document.
pub(crate) fn ident_of(document: &Document) -> Ident {
    let key = match document.get("key") {
        Some(Bson::String(s)) => s.clone(),
        _ => String::new(),
    };
    let granularity = match document.get("granularity") {
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    };
    let at = match document.get("at") {
        Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
        _ => None,
    };
    Ident {
        key,
        granularity,
        at,
    }
}

/// The bucket start of a read document in modes `partial` and `separated` (its `at`).
pub(crate) fn at_of(document: &Document) -> Option<i64> {
    match document.get("at") {
        Some(Bson::DateTime(d)) => Some(d.timestamp_millis().div_euclid(1000)),
        _ => None,
    }
}

/// `s` with every character a regular expression treats specially escaped.
fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}/-#:".contains(c) || c.is_whitespace() {
            // `:` and `#` need no escape, but escaping punctuation is always allowed.
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(mode: IdMode) -> Layout {
        Layout {
            mode,
            separator: "::".into(),
        }
    }

    fn key(start: i64) -> Key {
        Key::bucket("orders", "1h".parse().unwrap(), start).unwrap()
    }

    #[test]
    fn identities_per_mode() {
        let k = key(1_700_002_800);
        assert_eq!(
            layout(IdMode::Full).identity(&k).unwrap(),
            doc! {"key": "orders::1h::1700002800"}
        );
        let date = DateTime::from_millis(1_700_002_800_000);
        assert_eq!(
            layout(IdMode::Partial).identity(&k).unwrap(),
            doc! {"key": "orders::1h", "at": date}
        );
        assert_eq!(
            layout(IdMode::Separated).identity(&k).unwrap(),
            doc! {"key": "orders", "granularity": "1h", "at": date}
        );
        let status = Key::status("orders").unwrap();
        assert_eq!(
            layout(IdMode::Full).identity(&status).unwrap(),
            doc! {"key": "orders"}
        );
    }

    #[test]
    fn starts_out_of_date_range_are_refused() {
        let k = key(i64::MAX);
        layout(IdMode::Full).check_key(&k).unwrap();
        for mode in [IdMode::Partial, IdMode::Separated] {
            let err = layout(mode).check_key(&k).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn metrics_with_the_separator_are_refused_in_joined_modes() {
        let l = Layout {
            mode: IdMode::Full,
            separator: "|".into(),
        };
        let err = l.check_metric("a|b").unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        let l = Layout {
            mode: IdMode::Separated,
            separator: "|".into(),
        };
        l.check_metric("a|b").unwrap();
    }

    #[test]
    fn full_keys_give_back_their_start() {
        let l = layout(IdMode::Full);
        let h: Granularity = "1h".parse().unwrap();
        assert_eq!(l.start_of_full_key("a::1h::-3600", h), Some(-3600));
        assert_eq!(l.start_of_full_key("a::1h::x", h), None);
        assert_eq!(l.start_of_full_key("a::11h::3600", h), None);
    }

    #[test]
    fn regex_escaping() {
        assert_eq!(escape_regex("a.b*c"), "a\\.b\\*c");
        assert_eq!(escape_regex("::"), "\\:\\:");
    }
}
