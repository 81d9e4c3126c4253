//! Printing series and listings: table, CSV, JSON.

use std::collections::BTreeSet;

use comfy_table::{Table, presets};
use jiff::tz::TimeZone;
use stats::{Number, Series};

use crate::error::{CliError, CliResult};
use crate::time::rfc3339_in;

/// A number as JSON spells it (`3`, `0.5`, `1e+20`).
pub fn number_text(n: Number) -> String {
    serde_json::Value::from(n).to_string()
}

/// Every leaf path of the series, sorted.
pub fn paths(series: &Series) -> Vec<String> {
    let mut all = BTreeSet::new();
    for (_, values) in series.iter() {
        for (path, _) in values.flatten() {
            all.insert(path);
        }
    }
    all.into_iter().collect()
}

/// The rows of a series: the bucket start in `zone`, then each path's value or an empty cell.
fn rows(series: &Series, zone: &TimeZone, paths: &[String]) -> Vec<Vec<String>> {
    series
        .iter()
        .map(|(at, values)| {
            let mut row = vec![rfc3339_in(at, zone)];
            row.extend(
                paths
                    .iter()
                    .map(|p| values.number_at(p).map(number_text).unwrap_or_default()),
            );
            row
        })
        .collect()
}

/// The series as a table: one row per bucket, one column per path.
pub fn table(series: &Series, zone: &TimeZone) -> String {
    let paths = paths(series);
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["at".to_owned()];
    header.extend(paths.iter().cloned());
    table.set_header(header);
    for row in rows(series, zone, &paths) {
        table.add_row(row);
    }
    for column in 1..=paths.len() {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table.to_string()
}

/// The series as CSV with a header row (`at`, then the paths).
///
/// # Errors
/// [`CliError::Failed`] if the CSV writer fails (it writes to memory).
pub fn csv(series: &Series, zone: &TimeZone) -> CliResult<String> {
    let paths = paths(series);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["at".to_owned()];
    header.extend(paths.iter().cloned());
    let failed = |e: csv::Error| CliError::failed(format!("CSV: {e}"));
    writer.write_record(&header).map_err(failed)?;
    for row in rows(series, zone, &paths) {
        writer.write_record(&row).map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| CliError::failed(format!("CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| CliError::failed(format!("CSV: {e}")))
}

/// A listing of names and numbers as a two-column table.
pub fn pairs_table(header: [&str; 2], pairs: &[(String, String)]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(header.to_vec());
    for (name, value) in pairs {
        table.add_row(vec![name.clone(), value.clone()]);
    }
    if let Some(c) = table.column_mut(1) {
        c.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stats::values;

    #[test]
    fn csv_quotes_and_blanks() {
        let at = |s: &str| s.parse().unwrap();
        let series = Series::new(
            vec![at("2026-01-01T00:00:00Z"), at("2026-01-01T01:00:00Z")],
            vec![values!({"count": 2, "a,b": 0.5}), values!({})],
        )
        .unwrap();
        let text = csv(&series, &TimeZone::UTC).unwrap();
        assert_eq!(
            text,
            "at,\"a,b\",count\n2026-01-01T00:00:00+00:00,0.5,2\n2026-01-01T01:00:00+00:00,,\n"
        );
        let table = table(&series, &TimeZone::UTC);
        assert!(table.contains("a,b") && table.contains("count"), "{table}");
    }
}
