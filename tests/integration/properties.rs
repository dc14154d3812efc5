//! Property tests of the comparison engine (proptest).
