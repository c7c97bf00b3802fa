//! A plain-text table with aligned columns, and number formatting for it.

use crate::child::CorePlan;
use crate::machine::Machine;

/// How a column is aligned.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table of strings, rendered with aligned columns and a rule under the header.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, ending in a newline.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(index, (name, _))| {
                self.rows
                    .iter()
                    .map(|row| row[index].chars().count())
                    .chain([name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (index, cell) in cells.into_iter().enumerate() {
                let width = widths[index];
                if index > 0 {
                    text.push_str("  ");
                }
                match self.columns[index].1 {
                    Align::Left => text.push_str(&format!("{cell:<width$}")),
                    Align::Right => text.push_str(&format!("{cell:>width$}")),
                }
            }
            text.trim_end().to_owned() + "\n"
        };
        let mut text = line(self.columns.iter().map(|(name, _)| name.as_str()).collect());
        let rule_width = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        text.push_str(&"-".repeat(rule_width));
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        text
    }
}

/// An integer with thousands separators: `1234567` is `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// A ratio as `0.42x`, or `-` when there is none.
pub fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.2}x"))
}

/// Nanoseconds as microseconds with a precision that suits the magnitude.
pub fn micros(nanoseconds: u64) -> String {
    let micros = nanoseconds as f64 / 1e3;
    if micros < 10.0 {
        format!("{micros:.2}")
    } else if micros < 1000.0 {
        format!("{micros:.1}")
    } else {
        thousands(micros.round() as u64)
    }
}

/// A program's table under its title lines: `TITLE on MACHINE`, then where the two processes ran
/// (`sides` names them: sender and receiver, or client and server), the libzmq version if linked,
/// and `note`.
pub fn titled(
    table: &Table,
    title: &str,
    machine: &Machine,
    cores: CorePlan,
    sides: (&str, &str),
    note: &str,
) -> String {
    let (first, second) = sides;
    let pinning = match (cores.sender, cores.receiver) {
        (Some(sender), Some(receiver)) if sender != receiver => {
            format!("{first} on core {sender}, {second} on core {receiver}")
        }
        (Some(core), Some(_)) => format!("both processes on core {core} (only one core)"),
        _ => "processes not pinned".to_owned(),
    };
    let libzmq = crate::zeromq::version().map(|version| format!("; libzmq {version}"));
    let pinning = pinning + &libzmq.unwrap_or_default();
    format!(
        "{title} on {}\n{pinning}; {note}\n\n{}",
        machine.summary(),
        table.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&[("name", Align::Left), ("value", Align::Right)]);
        table.row(vec!["a".to_owned(), "1".to_owned()]);
        table.row(vec!["longer".to_owned(), "1,000".to_owned()]);
        assert_eq!(
            table.render(),
            "name    value\n-------------\na           1\nlonger  1,000\n"
        );
    }

    #[test]
    fn numbers_format_for_reading() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(ratio(Some(0.4567)), "0.46x");
        assert_eq!(ratio(None), "-");
        assert_eq!(micros(3_456), "3.46");
        assert_eq!(micros(56_789), "56.8");
        assert_eq!(micros(12_345_678), "12,346");
    }
}
