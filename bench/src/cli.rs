//! A small hand-written command-line parser: `--flag value` and `--flag=value`, comma lists,
//! sizes with `k`/`KiB` suffixes and durations with `s`/`ms` suffixes, plus the options both
//! programs share.

use std::collections::VecDeque;
use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// The default payload sizes: 32 B, 1 KiB and 64 KiB.
pub const DEFAULT_SIZES: [usize; 3] = [32, 1024, 65536];

/// A cursor over command-line arguments (without the program name).
#[derive(Debug)]
pub struct Args {
    items: VecDeque<String>,
}

impl Args {
    /// Arguments from a list, for tests and for the child processes.
    pub fn new<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            items: items.into_iter().map(Into::into).collect(),
        }
    }

    /// The process's own arguments, without the program name.
    ///
    /// # Errors
    /// When an argument is not valid UTF-8.
    pub fn from_env() -> Result<Self> {
        let mut items = VecDeque::new();
        for arg in std::env::args_os().skip(1) {
            match arg.into_string() {
                Ok(arg) => items.push_back(arg),
                Err(arg) => bail!("argument {arg:?} is not valid UTF-8"),
            }
        }
        Ok(Self { items })
    }

    /// The next flag or word; `--flag=value` is split so that the value comes next.
    pub fn next_flag(&mut self) -> Option<String> {
        let item = self.items.pop_front()?;
        if item.starts_with("--")
            && let Some((flag, value)) = item.split_once('=')
        {
            self.items.push_front(value.to_owned());
            return Some(flag.to_owned());
        }
        Some(item)
    }

    /// Whether the next argument is `word` (without consuming it).
    pub fn peek_is(&self, word: &str) -> bool {
        self.items
            .front()
            .is_some_and(|item| item == word || item.starts_with(&format!("{word}=")))
    }

    /// The raw value that follows `flag`.
    ///
    /// # Errors
    /// When the arguments end before the value.
    pub fn raw_value(&mut self, flag: &str) -> Result<String> {
        self.items
            .pop_front()
            .with_context(|| format!("{flag} needs a value"))
    }

    /// The value that follows `flag`, parsed.
    ///
    /// # Errors
    /// When it is missing or does not parse.
    pub fn value<T>(&mut self, flag: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.raw_value(flag)?;
        raw.parse()
            .map_err(|error| anyhow::anyhow!("{flag} {raw:?}: {error}"))
    }
}

/// Which cores the two processes of a measurement run on.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum CoreChoice {
    /// The first two cores this process may run on (one shared core if there is only one).
    #[default]
    Auto,
    /// Sender (or client) on the first core, receiver (or server) on the second.
    Fixed {
        /// Core of the sender or client.
        sender: usize,
        /// Core of the receiver or server.
        receiver: usize,
    },
    /// Do not pin.
    Unpinned,
}

/// Options that both programs take.
#[derive(Clone, Debug, PartialEq)]
pub struct CommonOptions {
    /// Requested payload sizes in bytes.
    pub sizes: Vec<usize>,
    /// Run only the contenders with these names (all when `None`).
    pub only: Option<Vec<String>>,
    /// Core placement.
    pub cores: CoreChoice,
    /// Print only the JSON line.
    pub json_only: bool,
}

impl Default for CommonOptions {
    fn default() -> Self {
        Self {
            sizes: DEFAULT_SIZES.to_vec(),
            only: None,
            cores: CoreChoice::Auto,
            json_only: false,
        }
    }
}

impl CommonOptions {
    /// Consumes `flag` (and its value) if it is a common option; `Ok(false)` when it is not one.
    ///
    /// # Errors
    /// When the value is missing or malformed.
    pub fn parse_flag(&mut self, flag: &str, args: &mut Args) -> Result<bool> {
        match flag {
            "--sizes" => self.sizes = parse_sizes(&args.raw_value(flag)?)?,
            "--only" => self.only = Some(parse_names(&args.raw_value(flag)?)?),
            "--cores" => {
                let cores = parse_list::<usize>(&args.raw_value(flag)?).context("--cores")?;
                let [sender, receiver] = cores[..] else {
                    bail!("--cores takes two core numbers: SENDER,RECEIVER");
                };
                self.cores = CoreChoice::Fixed { sender, receiver };
            }
            "--no-pin" => self.cores = CoreChoice::Unpinned,
            "--json-only" => self.json_only = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks that every name given to `--only` is one of `names`.
    ///
    /// # Errors
    /// Naming the first unknown one.
    pub fn check_only(&self, names: &[&str]) -> Result<()> {
        if let Some(unknown) = self
            .only
            .iter()
            .flatten()
            .find(|only| !names.contains(&only.as_str()))
        {
            bail!(
                "--only: no contender named {unknown:?} (known: {})",
                names.join(", ")
            );
        }
        Ok(())
    }

    /// Whether a contender with `name` was selected by `--only`.
    pub fn selects(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|names| names.iter().any(|only| only == name))
    }
}

/// Writes `text` to standard output; a closed pipe (`| head`) is not an error.
///
/// # Errors
/// When writing fails otherwise.
pub fn print(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

/// Ends a program: prints the error chain to standard error and returns a failing exit code.
pub fn report_errors(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help text for the common options.
pub const COMMON_HELP: &str =
    "  --sizes LIST      payload sizes in bytes, comma-separated; k/KiB suffixes allowed
                    (default 32,1024,65536)
  --only NAMES      run only these contenders, comma-separated (see --list)
  --cores TX,RX     pin the sender/client to core TX and the receiver/server to core RX
                    (default: the first two cores this process may use)
  --no-pin          do not pin the processes
  --json-only       print only the JSON line
  --list            list the contenders and exit
  --help            this text
environment: PHYLA_GATHER_MIN_BYTES=BYTES|off sets SessionConfig::gather_min_bytes of the
  Phyla rows (each row names its driver)";

/// Parses a comma-separated list of sizes: `32,1k,64KiB` is `[32, 1024, 65536]`.
///
/// # Errors
/// When an entry is not a positive size.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>> {
    let mut sizes = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let lower = entry.to_ascii_lowercase();
        let (digits, scale) = if let Some(digits) = lower
            .strip_suffix("kib")
            .or_else(|| lower.strip_suffix('k'))
        {
            (digits, 1024)
        } else if let Some(digits) = lower
            .strip_suffix("mib")
            .or_else(|| lower.strip_suffix('m'))
        {
            (digits, 1024 * 1024)
        } else {
            (lower.strip_suffix('b').unwrap_or(&lower), 1)
        };
        let count: usize = digits
            .trim()
            .parse()
            .with_context(|| format!("size {entry:?} is not a number"))?;
        let size = count
            .checked_mul(scale)
            .with_context(|| format!("size {entry:?} too large"))?;
        if size == 0 || size > MAX_SIZE {
            bail!("size {entry:?} must be between 1 B and 16 MiB");
        }
        sizes.push(size);
    }
    if sizes.is_empty() {
        bail!("no sizes given");
    }
    Ok(sizes)
}

/// Parses a comma-separated list of contender names (lower-cased).
///
/// # Errors
/// When the list is empty.
pub fn parse_names(text: &str) -> Result<Vec<String>> {
    let names: Vec<String> = text
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    if names.is_empty() {
        bail!("no names given");
    }
    Ok(names)
}

/// Parses a comma-separated list of values.
///
/// # Errors
/// When an entry does not parse.
pub fn parse_list<T>(text: &str) -> Result<Vec<T>>
where
    T: FromStr,
    T::Err: Display,
{
    text.split(',')
        .map(|entry| {
            entry
                .trim()
                .parse()
                .map_err(|error| anyhow::anyhow!("{entry:?}: {error}"))
        })
        .collect()
}

/// Parses a duration: `2`, `2.5`, `2s` or `500ms`.
///
/// # Errors
/// When it is not a non-negative finite number of seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1e-3)
    } else {
        (text.strip_suffix('s').unwrap_or(text), 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("duration {text:?} is not a number"))?;
    let seconds = value * scale;
    if !seconds.is_finite() || !(0.0..=3600.0).contains(&seconds) {
        bail!("duration {text:?} must be between 0 and 3600 s");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A human label for a size: `32 B`, `1 KiB`, `64 KiB`, `1500 B`.
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

const MAX_SIZE: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_suffixes_and_reject_zero() {
        assert_eq!(parse_sizes("32,1k,64KiB").unwrap(), vec![32, 1024, 65536]);
        assert_eq!(
            parse_sizes(" 100b , 2m").unwrap(),
            vec![100, 2 * 1024 * 1024]
        );
        assert!(parse_sizes("0").is_err());
        assert!(parse_sizes("abc").is_err());
        assert!(parse_sizes("").is_err());
        assert!(parse_sizes("17m").is_err());
    }

    #[test]
    fn durations_accept_seconds_and_milliseconds() {
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn common_options_parse_flags_with_and_without_equals() {
        let mut options = CommonOptions::default();
        let mut args = Args::new(["--sizes=32,64", "--only", "Udp-Floor,zmq", "--cores", "2,3"]);
        while let Some(flag) = args.next_flag() {
            assert!(options.parse_flag(&flag, &mut args).unwrap(), "{flag}");
        }
        assert_eq!(options.sizes, vec![32, 64]);
        assert_eq!(
            options.only,
            Some(vec!["udp-floor".to_owned(), "zmq".to_owned()])
        );
        assert_eq!(
            options.cores,
            CoreChoice::Fixed {
                sender: 2,
                receiver: 3
            }
        );
        assert!(options.selects("zmq"));
        assert!(!options.selects("phyla"));

        let mut args = Args::new(["--cores", "1"]);
        let flag = args.next_flag().unwrap();
        assert!(options.parse_flag(&flag, &mut args).is_err());
        let mut args = Args::new(["--sizes"]);
        let flag = args.next_flag().unwrap();
        assert!(options.parse_flag(&flag, &mut args).is_err());
    }

    #[test]
    fn size_labels_use_binary_units() {
        assert_eq!(size_label(32), "32 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(size_label(65536), "64 KiB");
        assert_eq!(size_label(65507), "65507 B");
    }
}
