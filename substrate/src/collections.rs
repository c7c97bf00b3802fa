//! Deterministic hash maps and sets.
//!
//! `std`'s maps use a randomly keyed hasher, so their iteration order changes from run to run and
//! breaks seed replay. These aliases use a fixed hasher (FxHash): same inputs, same order. They
//! are not DoS-resistant; keys that come from the network are connection ids this node chose
//! itself, or are bounded in number.

use core::hash::BuildHasherDefault;

/// A hash map with a fixed, deterministic hasher.
pub type HashMap<K, V> = hashbrown::HashMap<K, V, BuildHasherDefault<rustc_hash::FxHasher>>;
/// A hash set with a fixed, deterministic hasher.
pub type HashSet<K> = hashbrown::HashSet<K, BuildHasherDefault<rustc_hash::FxHasher>>;
