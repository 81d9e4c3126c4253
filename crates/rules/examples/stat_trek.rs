//! The stat_trek example with `stats` rules: a test's score per user, cascaded to its course
//! and the course's session.
//!
//! ```text
//! cargo run -p stats-rules --example stat_trek                      # in-process store
//! cargo run -p stats-rules --example stat_trek -- sqlite:///tmp/s.db # SQLite file
//! ```
//!
//! The Ruby declaration it mirrors:
//!
//! ```ruby
//! stat_trek :score, stats_model: TestStatistic, key_fields: [:user_id, test_slug: :slug],
//!   agg_strategy: :sum, guards: {time_limit: {time_field: :deadline}, throttle: {period: 30.seconds}},
//!   touch: :course
//! ```

use std::sync::Arc;
use std::time::Duration;

use stats_backend_atomics::AtomicsStore;
use stats_backend_sql::{SqlConfig, SqlStore};
use stats_core::jiff::{Timestamp, ToSpan};
use stats_core::{MetricStore, ThrottleStore};
use stats_rules::{Context, Entity, FieldValue, Guard, Rule, Rules, Strategy};

struct Session {
    id: i64,
}

struct Course {
    id: i64,
    session: Arc<Session>,
}

struct Test {
    slug: String,
    deadline: Timestamp,
    course: Arc<Course>,
}

impl Entity for Session {
    fn entity_type(&self) -> &str {
        "session"
    }
    fn field(&self, name: &str) -> Option<FieldValue> {
        (name == "id").then_some(FieldValue::Int(self.id))
    }
    fn parents(&self, _: &str) -> Vec<Arc<dyn Entity>> {
        Vec::new()
    }
}

impl Entity for Course {
    fn entity_type(&self) -> &str {
        "course"
    }
    fn field(&self, name: &str) -> Option<FieldValue> {
        (name == "id").then_some(FieldValue::Int(self.id))
    }
    fn parents(&self, association: &str) -> Vec<Arc<dyn Entity>> {
        match association {
            "session" => vec![self.session.clone()],
            _ => Vec::new(),
        }
    }
}

impl Entity for Test {
    fn entity_type(&self) -> &str {
        "test"
    }
    fn field(&self, name: &str) -> Option<FieldValue> {
        match name {
            "slug" => Some(self.slug.as_str().into()),
            "deadline" => Some(self.deadline.into()),
            _ => None,
        }
    }
    fn parents(&self, association: &str) -> Vec<Arc<dyn Entity>> {
        match association {
            "course" => vec![self.course.clone()],
            _ => Vec::new(),
        }
    }
}

fn rules(
    metrics: Arc<dyn MetricStore>,
    throttles: Arc<dyn ThrottleStore>,
) -> stats_core::Result<Rules> {
    Rules::builder()
        .rule(
            Rule::new("test", "score")
                .record("test_statistic")
                .key_from_context("user_id")
                .key_from_entity("test_slug", "slug")
                .strategy(Strategy::Sum)
                .guard(Guard::time_limit("deadline").on_trigger(|test| {
                    println!("  too late for {:?}", test.field("slug"));
                }))
                .guard(Guard::throttle(Duration::from_secs(30)).on_trigger(|test| {
                    println!("  throttled {:?}", test.field("slug"));
                }))
                .touch("course"),
        )
        .rule(
            Rule::new("course", "score")
                .key_from_context("user_id")
                .key_from_entity("course_id", "id")
                .strategy(Strategy::Sum)
                .touch("session"),
        )
        .rule(
            Rule::new("session", "score")
                .key_from_context("user_id")
                .key_from_entity("session_id", "id")
                .strategy(Strategy::Max),
        )
        .build(metrics, throttles)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rules = match std::env::args().nth(1) {
        Some(url) => {
            let store = Arc::new(SqlStore::connect(SqlConfig::from_url(&url)?).await?);
            store.setup().await?;
            println!("on {url}");
            rules(store.clone(), store)?
        }
        None => {
            let store = Arc::new(AtomicsStore::new());
            println!("on the in-process store");
            rules(store.clone(), store)?
        }
    };

    let session = Arc::new(Session { id: 1 });
    let course = Arc::new(Course { id: 7, session });
    let algebra = Test {
        slug: "algebra-1".into(),
        deadline: Timestamp::now() + 1.hour(),
        course: course.clone(),
    };
    let late = Test {
        slug: "geometry-1".into(),
        deadline: Timestamp::now() - 1.hour(),
        course,
    };
    let ada = Context::new().with("user_id", 1);

    // test.stat_trek(:score, 20, user_id: 1)
    for (test, score) in [(&algebra, 20), (&algebra, 5), (&late, 9)] {
        println!("apply {score} to {}", test.slug);
        let outcome = rules.apply(test, "score", score, &ada).await?;
        for updated in &outcome.updated {
            println!("  updated {}", updated.record);
        }
        for blocked in &outcome.blocked {
            println!("  blocked {} by {}", blocked.record, blocked.guard);
        }
    }

    let test_keys = ada.clone().with("test_slug", "algebra-1");
    let course_keys = ada.clone().with("course_id", 7);
    let session_keys = ada.clone().with("session_id", 1);
    let test_score = rules.record("test", "score", &test_keys).await?;
    let course_score = rules.record("course", "score", &course_keys).await?;
    let session_score = rules.record("session", "score", &session_keys).await?;
    println!("test {test_score:?}, course {course_score:?}, session {session_score:?}");
    // A blocked test is not touched through to its course: course and session hold 20.
    // Run twice on one SQLite file within 30 s and the throttle holds the first update back too.
    Ok(())
}
