//! Output: tables for people, JSON or YAML for scripts.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// Output format chosen with `-o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// Pretty JSON of the API's answer.
    Json,
    /// YAML of the API's answer.
    Yaml,
}

/// A table with `header`.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    t
}

/// Prints `value` in `format`; `rows` builds the table form.
pub fn print<T: Serialize>(format: Format, value: &T, rows: impl FnOnce() -> Table) -> anyhow::Result<()> {
    match format {
        Format::Table => println!("{}", rows()),
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml::to_string(value)?),
    }
    Ok(())
}
