//! sled-backed store (being built).
