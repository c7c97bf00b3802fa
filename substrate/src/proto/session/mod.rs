//! The reliable unicast session (being written).
