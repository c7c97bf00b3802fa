//! Phyla's benchmark programs (`src/bin/`): each prints a readable table and, as its last line,
//! one JSON object with every figure, its baselines and the ratios. The engine issue adds the
//! throughput, ping-pong and fan-out programs; this library holds what they share.
