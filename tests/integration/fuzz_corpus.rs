//! Replays the fuzz corpus of the decode-and-compare target as a normal test.
