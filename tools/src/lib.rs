//! Phyla's command-line tools and daemon (`src/bin/`).
