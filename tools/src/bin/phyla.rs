//! Placeholder while the tool is written.

fn main() {}
