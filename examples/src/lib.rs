//! Applications assembled from the `netflix-*` crates, as a library so that tests drive
//! the same code the examples run. Not published.

pub mod full_stack;
