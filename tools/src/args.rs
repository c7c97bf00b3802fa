//! A small command-line parser shared by the tools: `--flag value`, `--flag=value`, switches
//! and positional arguments, with usage errors kept apart from runtime errors (exit code 2
//! against 1), so that scripts can tell a typo from a failure.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// A command line that cannot be understood: the tool prints it on one line and exits with 2.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The arguments still to be read. Iterate with [`Args::next_arg`]; read a flag's value with
/// [`Args::value`].
#[derive(Clone, Debug, Default)]
pub struct Args {
    items: VecDeque<String>,
    /// The value of a `--flag=value` just returned by `next_arg`, waiting for `value`.
    pending: Option<String>,
}

/// One item of the command line.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Arg {
    /// `--name` or `-n` (a following value, if any, is read with [`Args::value`]).
    Flag(String),
    /// Anything that does not start with `-` (or everything after `--`).
    Positional(String),
}

impl Args {
    /// The process's arguments, without the program name.
    ///
    /// # Errors
    /// A [`UsageError`] if an argument is not valid UTF-8.
    pub fn from_env() -> Result<Self, UsageError> {
        let mut items = VecDeque::new();
        for a in std::env::args_os().skip(1) {
            match a.into_string() {
                Ok(s) => items.push_back(s),
                Err(a) => return Err(UsageError(format!("argument {a:?} is not UTF-8"))),
            }
        }
        Ok(Self {
            items,
            pending: None,
        })
    }

    /// Arguments from a list (tests, and sub-commands).
    pub fn from_vec(items: Vec<String>) -> Self {
        Self {
            items: items.into(),
            pending: None,
        }
    }

    /// The next flag or positional argument.
    ///
    /// # Errors
    /// A [`UsageError`] if the previous flag was given `=value` that nobody read.
    pub fn next_arg(&mut self) -> Result<Option<Arg>, UsageError> {
        if let Some(v) = self.pending.take() {
            return Err(UsageError(format!("unexpected value {v:?}")));
        }
        let Some(item) = self.items.pop_front() else {
            return Ok(None);
        };
        if item == "--" {
            return Ok(self.items.pop_front().map(Arg::Positional));
        }
        if item.starts_with('-') && item.len() > 1 {
            if let Some((flag, value)) = item.split_once('=') {
                self.pending = Some(value.to_owned());
                return Ok(Some(Arg::Flag(flag.to_owned())));
            }
            return Ok(Some(Arg::Flag(item)));
        }
        Ok(Some(Arg::Positional(item)))
    }

    /// The value of `flag`, parsed.
    ///
    /// # Errors
    /// A [`UsageError`] naming the flag if the value is missing or does not parse.
    pub fn value<T: FromStr>(&mut self, flag: &str) -> Result<T, UsageError>
    where
        T::Err: fmt::Display,
    {
        let raw = match self.pending.take() {
            Some(v) => v,
            None => self
                .items
                .pop_front()
                .ok_or_else(|| UsageError(format!("{flag} needs a value")))?,
        };
        raw.parse()
            .map_err(|e| UsageError(format!("{flag} {raw:?}: {e}")))
    }

    /// Fails if a switch (a flag without a value) was given `=value`.
    ///
    /// # Errors
    /// A [`UsageError`] naming the switch.
    pub fn switch(&mut self, flag: &str) -> Result<(), UsageError> {
        match self.pending.take() {
            Some(v) => Err(UsageError(format!("{flag} takes no value (got {v:?})"))),
            None => Ok(()),
        }
    }
}

/// The usage error for a flag the tool does not know.
pub fn unknown(flag: &str) -> UsageError {
    UsageError(format!("unknown option {flag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Args {
        Args::from_vec(s.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn args_read_flags_values_and_positionals() {
        let mut a = args(&["--count", "3", "--size=8", "name", "--json", "--", "-x"]);
        assert_eq!(a.next_arg(), Ok(Some(Arg::Flag("--count".into()))));
        assert_eq!(a.value::<u32>("--count"), Ok(3));
        assert_eq!(a.next_arg(), Ok(Some(Arg::Flag("--size".into()))));
        assert_eq!(a.value::<u32>("--size"), Ok(8));
        assert_eq!(a.next_arg(), Ok(Some(Arg::Positional("name".into()))));
        assert_eq!(a.next_arg(), Ok(Some(Arg::Flag("--json".into()))));
        assert_eq!(a.switch("--json"), Ok(()));
        assert_eq!(a.next_arg(), Ok(Some(Arg::Positional("-x".into()))));
        assert_eq!(a.next_arg(), Ok(None));
    }

    #[test]
    fn args_reject_missing_and_bad_values() {
        let mut a = args(&["--count"]);
        assert!(a.next_arg().is_ok());
        assert!(a.value::<u32>("--count").is_err());
        let mut a = args(&["--count", "x"]);
        assert!(a.next_arg().is_ok());
        let e = a.value::<u32>("--count").err();
        assert!(e.is_some_and(|e| e.0.contains("--count")));
        let mut a = args(&["--json=1"]);
        assert!(a.next_arg().is_ok());
        assert!(a.switch("--json").is_err());
    }
}

/// How a tool ends when it does not succeed: a usage error (exit 2) or a runtime failure
/// (exit 1). Either is printed as one line on standard error.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong.
    Usage(UsageError),
    /// Something failed while running.
    Runtime(anyhow::Error),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Self::Usage(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Runtime(e)
    }
}

/// Prints `result`'s error, if any, as one line on standard error, prefixed with the tool's
/// name, and returns the exit code: 0 ok, 1 runtime failure, 2 usage.
pub fn finish(tool: &str, result: Result<(), Failure>) -> std::process::ExitCode {
    use std::process::ExitCode;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("{tool}: {} (see {tool} --help)", one_line(&e.0));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("{tool}: error: {}", one_line(&chain(&e)));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes as `context: cause: cause`, leaving out a cause whose text the line
/// already holds (typed errors often name their cause in their own message).
pub fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `s` with line breaks turned into `; `, so an error stays on one line.
pub fn one_line(s: &str) -> String {
    s.trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
