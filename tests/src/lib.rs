//! Whole-system test support.
