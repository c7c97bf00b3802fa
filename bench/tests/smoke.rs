//! Both programs end to end with tiny settings: two child processes per measurement, a table, and
//! one JSON object as the last line. No figure is asserted; only the shape of the output.

use std::process::Command;

use serde_json::Value;

fn run(program: &str, args: &[&str]) -> (String, Value) {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("the program starts");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().expect("some output");
    let json: Value = serde_json::from_str(last).expect("the last line is JSON");
    (stdout, json)
}

#[test]
fn throughput_prints_a_table_and_a_json_line() {
    let (stdout, json) = run(
        env!("CARGO_BIN_EXE_throughput"),
        &[
            "--duration",
            "200ms",
            "--warmup",
            "50ms",
            "--sizes",
            "32,64k",
        ],
    );
    assert_eq!(json["program"], "throughput");
    assert_eq!(json["errors"], Value::Array(vec![]), "{stdout}");
    let rows = json["rows"].as_array().expect("rows");
    // Floor, ZeroMQ, and Phyla on two drivers at two datagram sizes.
    let contenders = if cfg!(feature = "zeromq") { 6 } else { 5 };
    assert_eq!(rows.len(), 2 * contenders, "{stdout}");
    for row in rows {
        for key in [
            "msgs_per_s",
            "mb_per_s",
            "ratio_vs_floor",
            "ratio_vs_zmq",
            "loss",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
    assert_eq!(
        rows[1]["payload_bytes"], 65_507,
        "UDP caps 64 KiB at the largest datagram"
    );
    assert!(json["baselines"]["floor"]["32"]["msgs_per_s"].is_number());
    assert!(json["machine"]["cores"].is_number());
    assert!(
        stdout.contains("msgs/s") && stdout.contains("vs ZeroMQ"),
        "{stdout}"
    );
}

#[test]
fn pingpong_prints_percentiles_and_writes_the_plot() {
    let svg = std::env::temp_dir().join(format!("phyla-bench-smoke-{}.svg", std::process::id()));
    let svg_arg = svg.to_str().expect("UTF-8 temp path");
    let (stdout, json) = run(
        env!("CARGO_BIN_EXE_pingpong"),
        &[
            "--rounds",
            "300",
            "--warmup-rounds",
            "30",
            "--sizes",
            "32",
            "--svg",
            svg_arg,
        ],
    );
    assert_eq!(json["program"], "pingpong");
    assert_eq!(json["errors"], Value::Array(vec![]), "{stdout}");
    let rows = json["rows"].as_array().expect("rows");
    // Two floors, ZeroMQ, and Phyla on two drivers, spinning and parked.
    let contenders = if cfg!(feature = "zeromq") { 7 } else { 6 };
    assert_eq!(rows.len(), contenders, "{stdout}");
    for row in rows {
        for key in [
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "max_ns",
            "p50_vs_floor_busy",
            "p999_vs_floor_busy",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        assert_eq!(row["rounds"], 300);
    }
    let plot = std::fs::read_to_string(&svg).expect("the plot was written");
    let _ = std::fs::remove_file(&svg);
    assert!(plot.starts_with("<?xml") && plot.trim_end().ends_with("</svg>"));
    assert_eq!(plot.matches("<polyline").count(), contenders);
}
