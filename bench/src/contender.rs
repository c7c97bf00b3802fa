//! What every contender is, whichever program measures it, and the parts of the two programs that
//! deal only in contenders: the command line's shape, `--list`, finding the contender a child
//! process runs, and the loop over contenders and sizes.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::child::{self, ChildSpec};
use crate::cli::{self, Args, CommonOptions};
use crate::machine::Machine;
use crate::table::thousands;

/// One system under test, as both programs see it: how it is named and shown, and whether it can
/// run here. [`ThroughputContender`](crate::throughput::ThroughputContender) and
/// [`PingPongContender`](crate::pingpong::PingPongContender) add what each program runs.
pub trait Contender: Sync {
    /// Unique, stable identifier (`--only`, child processes, JSON): `udp-floor`, `zmq`, `phyla`.
    fn name(&self) -> &'static str;

    /// The system column: `kernel`, `ZeroMQ`, `Phyla`.
    fn system(&self) -> &'static str;

    /// The driver/mode column, e.g. `UDP sendmmsg/recvmmsg x64`.
    fn mode(&self) -> &'static str;

    /// The payload size it sends when `requested` bytes are asked for (UDP caps at 65,507).
    fn payload_bytes(&self, requested: usize) -> usize {
        requested
    }

    /// Whether it can run here; `Err(reason)` skips its rows and prints the reason.
    fn available(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What every row of either program starts with: a contender at one size.
#[derive(Clone, Debug, Serialize)]
pub struct RowLabel {
    /// The contender's `name()`.
    pub contender: String,
    /// The system column.
    pub system: String,
    /// The driver/mode column.
    pub mode: String,
    /// The baseline it is, if any: its key in the JSON `baselines` object.
    pub baseline: Option<&'static str>,
    /// Requested payload size in bytes.
    pub size: usize,
    /// Payload size actually sent.
    pub payload_bytes: usize,
}

impl RowLabel {
    /// The label of `contender`'s row at `size`, sending `payload_bytes`-byte payloads.
    pub fn new<C: Contender + ?Sized>(
        contender: &C,
        baseline: Option<&'static str>,
        size: usize,
        payload_bytes: usize,
    ) -> Self {
        Self {
            contender: contender.name().to_owned(),
            system: contender.system().to_owned(),
            mode: contender.mode().to_owned(),
            baseline,
            size,
            payload_bytes,
        }
    }

    /// The table's first cells: system, mode and size.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.system.clone(),
            self.mode.clone(),
            cli::size_label(self.size),
        ]
    }

    /// The table's notes on the label: the payload actually sent, when it is not the size asked.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.payload_bytes != self.size {
            notes.push(format!(
                "payload {} B",
                thousands(self.payload_bytes as u64)
            ));
        }
        notes
    }
}

/// What a program's command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command<O> {
    /// Run the benchmark.
    Run(O),
    /// Run one side of one measurement (hidden; the parent starts these).
    Child(ChildSpec),
    /// Print the help.
    Help,
    /// List the contenders.
    List,
}

/// A program's options: the common ones and its own.
pub trait ProgramOptions: Default {
    /// The options both programs take.
    fn common(&mut self) -> &mut CommonOptions;

    /// Consumes `flag` (and its value) if it is one of this program's own options; `Ok(false)`
    /// when it is not one.
    ///
    /// # Errors
    /// When the value is missing or malformed.
    fn parse_flag(&mut self, flag: &str, args: &mut Args) -> Result<bool>;

    /// Checks the options once they are all read.
    ///
    /// # Errors
    /// When they do not make sense together.
    fn check(&self) -> Result<()>;
}

/// Parses a program's command line: the hidden child mode, the common options, `--help`,
/// `--list` and the program's own options.
///
/// # Errors
/// On an unknown option or a malformed value.
pub fn parse<O: ProgramOptions>(mut args: Args) -> Result<Command<O>> {
    if args.peek_is("--role") {
        return Ok(Command::Child(ChildSpec::parse(&mut args)?));
    }
    let mut options = O::default();
    while let Some(flag) = args.next_flag() {
        if options.common().parse_flag(&flag, &mut args)? || options.parse_flag(&flag, &mut args)? {
            continue;
        }
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--list" => return Ok(Command::List),
            _ => bail!("unknown option {flag:?} (try --help)"),
        }
    }
    options.check()?;
    Ok(Command::Run(options))
}

/// One program, given its registry of contenders: what it does for each [`Command`].
pub trait Program {
    /// The contenders it measures (`dyn ThroughputContender`, `dyn PingPongContender`).
    type Contender: Contender + ?Sized;
    /// Its options.
    type Options: ProgramOptions;

    /// Width of the name column of `--list`.
    const LIST_WIDTH: usize;

    /// The help text.
    fn help() -> String;

    /// Runs `contender`'s side `spec.role` in this child process; returns its report.
    ///
    /// # Errors
    /// When the side fails, or the program has no such role.
    fn run_side(contender: &Self::Contender, spec: &ChildSpec) -> Result<Value>;

    /// Runs the benchmark.
    ///
    /// # Errors
    /// When the options name unknown contenders or printing fails.
    fn run(contenders: &[Box<Self::Contender>], options: &Self::Options) -> Result<()>;
}

/// A program's `main`: parses the process's arguments and does what they ask.
pub fn main<P: Program>(contenders: &[Box<P::Contender>]) -> ExitCode {
    cli::report_errors(run_main::<P>(contenders))
}

fn run_main<P: Program>(contenders: &[Box<P::Contender>]) -> Result<()> {
    match parse::<P::Options>(Args::from_env()?)? {
        Command::Help => cli::print(&P::help())?,
        Command::List => cli::print(&list(contenders, P::LIST_WIDTH))?,
        Command::Child(spec) => run_child::<P>(contenders, &spec)?,
        Command::Run(options) => P::run(contenders, &options)?,
    }
    Ok(())
}

/// The `--list` text: a line per contender, with why it cannot run if it cannot.
pub fn list<C: Contender + ?Sized>(contenders: &[Box<C>], width: usize) -> String {
    let mut text = String::new();
    for contender in contenders {
        let state = contender
            .available()
            .err()
            .map(|why| format!(" (unavailable: {why})"));
        let _ = writeln!(
            text,
            "{:<width$} {} {}{}",
            contender.name(),
            contender.system(),
            contender.mode(),
            state.unwrap_or_default()
        );
    }
    text
}

fn run_child<P: Program>(contenders: &[Box<P::Contender>], spec: &ChildSpec) -> Result<()> {
    let contender = contenders
        .iter()
        .find(|contender| contender.name() == spec.contender)
        .with_context(|| format!("no contender named {:?}", spec.contender))?;
    let pinned = child::pin_self(spec);
    let report = P::run_side(contender.as_ref(), spec)?;
    child::announce_result(spec, pinned, report);
    Ok(())
}

/// Checks that every name given to `--only` is a registered contender's.
///
/// # Errors
/// Naming the first unknown one.
pub fn check_only<C: Contender + ?Sized>(
    contenders: &[Box<C>],
    common: &CommonOptions,
) -> Result<()> {
    let names: Vec<&str> = contenders
        .iter()
        .map(|contender| contender.name())
        .collect();
    common.check_only(&names)
}

/// What a sweep over the contenders and sizes produced.
#[derive(Debug)]
pub struct Sweep<R> {
    /// One row per contender and size that was measured.
    pub rows: Vec<R>,
    /// The contenders that could not run here, with the reason (JSON).
    pub skipped: Vec<Value>,
    /// The measurements that failed, with the error (JSON).
    pub errors: Vec<Value>,
}

impl<R: Serialize> Sweep<R> {
    /// Prints the program's last line: one JSON object with the program's own `fields` (an
    /// object: program, units, config, baselines, ...) and what every report has: the machine,
    /// the libraries, the rows, the skipped contenders, the errors and the time since `started`.
    ///
    /// # Errors
    /// When printing fails.
    pub fn print_report(self, fields: Value, machine: &Machine, started: Instant) -> Result<()> {
        let mut report = json!({
            "machine": machine.to_json(),
            "libraries": { "libzmq": crate::zeromq::version() },
            "rows": self.rows,
            "skipped": self.skipped,
            "errors": self.errors,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        if let (Some(report), Value::Object(fields)) = (report.as_object_mut(), fields) {
            report.extend(fields);
        }
        cli::print(&format!("{report}\n"))
    }
}

/// Measures every selected contender that can run here at every size, in order, printing the
/// progress to standard error as `program: NAME SIZE ... ` and then `progress(row)` or the error.
/// `measure` gets the contender, the requested size and the payload size it sends.
pub fn sweep<C: Contender + ?Sized, R>(
    program: &str,
    contenders: &[Box<C>],
    common: &CommonOptions,
    mut measure: impl FnMut(&C, usize, usize) -> Result<R>,
    progress: impl Fn(&R) -> String,
) -> Sweep<R> {
    let mut sweep = Sweep {
        rows: Vec::new(),
        skipped: Vec::new(),
        errors: Vec::new(),
    };
    for contender in contenders
        .iter()
        .filter(|contender| common.selects(contender.name()))
    {
        if let Err(reason) = contender.available() {
            eprintln!("{program}: skipping {}: {reason}", contender.name());
            sweep
                .skipped
                .push(json!({ "contender": contender.name(), "reason": reason }));
            continue;
        }
        for &size in &common.sizes {
            let payload_bytes = contender.payload_bytes(size);
            eprint!(
                "{program}: {} {} ... ",
                contender.name(),
                cli::size_label(size)
            );
            match measure(contender.as_ref(), size, payload_bytes) {
                Ok(row) => {
                    eprintln!("{}", progress(&row));
                    sweep.rows.push(row);
                }
                Err(error) => {
                    eprintln!("failed: {error:#}");
                    sweep.errors.push(json!({
                        "contender": contender.name(), "size": size, "error": format!("{error:#}"),
                    }));
                }
            }
        }
    }
    sweep
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Contender;

    /// A contender with only a name and a baseline (`B`: the program's kind of baseline), for
    /// the programs' tests; it never runs.
    pub(crate) struct Fake<B>(pub(crate) &'static str, pub(crate) Option<B>);

    impl<B> Fake<B> {
        pub(crate) const fn new(name: &'static str, baseline: Option<B>) -> Self {
            Self(name, baseline)
        }
    }

    impl<B: Sync> Contender for Fake<B> {
        fn name(&self) -> &'static str {
            self.0
        }
        fn system(&self) -> &'static str {
            "fake"
        }
        fn mode(&self) -> &'static str {
            "none"
        }
    }
}
