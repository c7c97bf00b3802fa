//! What the figures were measured on: cores, CPU model, kernel and date.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The machine a run measured.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Cores online (`available_parallelism`).
    pub cores: usize,
    /// Cores this process may be pinned to.
    pub cores_allowed: usize,
    /// CPU model from `/proc/cpuinfo`, if readable.
    pub cpu: Option<String>,
    /// `uname -srm`.
    pub kernel: Option<String>,
    /// `uname -v`.
    pub kernel_build: Option<String>,
    /// Start of the run, UTC, ISO 8601.
    pub date_utc: String,
}

impl Machine {
    /// Reads the current machine.
    pub fn current() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let cores_allowed = core_affinity::get_core_ids().map_or(0, |ids| ids.len());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            });
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let (kernel, kernel_build) = crate::sys::uname().unzip();
        Self {
            cores,
            cores_allowed,
            cpu,
            kernel,
            kernel_build,
            date_utc: iso8601_utc(seconds),
        }
    }

    /// The machine as JSON for the report.
    pub fn to_json(&self) -> Value {
        json!({
            "cores": self.cores,
            "cores_allowed": self.cores_allowed,
            "cpu": self.cpu,
            "kernel": self.kernel,
            "kernel_build": self.kernel_build,
            "date_utc": self.date_utc,
        })
    }

    /// One line for the top of a table.
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {}, {}",
            self.cores,
            self.cpu.as_deref().unwrap_or("unknown CPU"),
            self.kernel.as_deref().unwrap_or("unknown kernel"),
            self.date_utc
        )
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
pub fn iso8601_utc(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
