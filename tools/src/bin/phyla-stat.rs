//! `phyla-stat`: shows the counters of running Phyla nodes, read from the stats snapshot files
//! they keep in their run directory (Aeron's AeronStat, for Phyla). See `docs/daemon.md`.

#![allow(
    clippy::disallowed_methods,
    reason = "a tool: --watch sleeps between reads"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use phyla_tools::args::{self, Arg, Args, Failure, UsageError};
use phyla_tools::log::unix_ms;
use phyla_tools::stats::{self, Snapshot};
use phyla_tools::{rundir, signal, stat_view};
use serde_json::json;

const HELP: &str = "\
phyla-stat: show the counters of running Phyla nodes

usage: phyla-stat [--run-dir DIR] [NAME...] [--json] [--watch SECS]

  NAME          nodes to show (default: every <name>.stats.json in the run directory)
  --run-dir DIR where the nodes write their stats files (default: the first of /run/phyla,
                $XDG_RUNTIME_DIR/phyla, /tmp/phyla that holds one)
  --json        print the snapshots as one JSON object per read instead of tables
  --watch SECS  read again every SECS seconds (rates per second from the second read on)
                until interrupted
  --help        this text

A node whose file is missing or unreadable gets an error line on standard error; the others are
still shown. Exit codes: 0 every node read, 1 some node could not be read, 2 usage.";

fn main() -> ExitCode {
    args::finish("phyla-stat", run())
}

struct Options {
    run_dir: Option<PathBuf>,
    names: Vec<String>,
    json: bool,
    watch: Option<Duration>,
}

fn parse_args() -> Result<Option<Options>, UsageError> {
    let mut a = Args::from_env()?;
    let mut o = Options {
        run_dir: None,
        names: Vec::new(),
        json: false,
        watch: None,
    };
    while let Some(arg) = a.next_arg()? {
        match arg {
            Arg::Flag(f) if f == "--help" || f == "-h" => {
                println!("{HELP}");
                return Ok(None);
            }
            Arg::Flag(f) if f == "--run-dir" => o.run_dir = Some(a.value(&f)?),
            Arg::Flag(f) if f == "--json" => {
                a.switch(&f)?;
                o.json = true;
            }
            Arg::Flag(f) if f == "--watch" => {
                let secs: f64 = a.value(&f)?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(UsageError(format!("--watch {secs}: expected seconds > 0")));
                }
                o.watch = Some(Duration::from_secs_f64(secs));
            }
            Arg::Flag(f) => return Err(args::unknown(&f)),
            Arg::Positional(name) => o.names.push(name),
        }
    }
    Ok(Some(o))
}

fn run() -> Result<(), Failure> {
    let Some(o) = parse_args()? else {
        return Ok(());
    };
    Ok(show(&o)?)
}

fn show(o: &Options) -> Result<()> {
    let run_dir = rundir::for_reading(o.run_dir.clone());
    if o.watch.is_some() {
        signal::install()?;
    }
    let mut previous: BTreeMap<String, Snapshot> = BTreeMap::new();
    loop {
        let nodes = stats::read_all(&run_dir, &o.names)?;
        let mut failed = 0;
        if nodes.is_empty() {
            eprintln!(
                "phyla-stat: no stats files in {} (no node running there?)",
                run_dir.display()
            );
            failed += 1;
        }
        let mut good = Vec::new();
        let mut errors = Vec::new();
        for (name, result) in nodes {
            match result {
                Ok(s) => good.push((name, s)),
                Err(e) => {
                    failed += 1;
                    eprintln!("phyla-stat: node {name}: {e}");
                    errors.push(json!({ "name": name, "error": e.to_string() }));
                }
            }
        }
        if o.json {
            let nodes: Vec<&Snapshot> = good.iter().map(|(_, s)| s).collect();
            println!(
                "{}",
                json!({ "ts_ms": unix_ms(), "run_dir": run_dir, "nodes": nodes,
                        "errors": errors })
            );
        } else {
            for (name, s) in &good {
                print!("{}", stat_view::render(s, previous.get(name)));
                println!();
            }
        }
        let Some(every) = o.watch else {
            if failed > 0 {
                bail!("{failed} node(s) could not be read");
            }
            return Ok(());
        };
        previous = good.into_iter().collect();
        // Sleep in small steps, so that an interrupt ends the watch promptly and cleanly.
        let mut slept = Duration::ZERO;
        while slept < every {
            if signal::received().is_some() {
                return Ok(());
            }
            let step = (every - slept).min(Duration::from_millis(50));
            std::thread::sleep(step);
            slept += step;
        }
        if signal::received().is_some() {
            return Ok(());
        }
        if !o.json {
            println!("--- {} ---", unix_ms());
        }
    }
}
