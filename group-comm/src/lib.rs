//! Phyla's group communication: named groups over self-building, self-repairing multicast trees.
//!
//! The membership, failure-detection, tree and delivery protocols, and the simulator that runs
//! them at scale, are the subject of the next foundation issues; today this crate only fixes its
//! place in the layering: it depends on `substrate`'s sans-IO layers (and, with the `engine`
//! feature, on its engine), never the other way round.

#![warn(missing_docs)]

pub use substrate;
