//! (writer)
