//! The in-memory network on virtual time and the harness that drives sans-IO protocols over it.
