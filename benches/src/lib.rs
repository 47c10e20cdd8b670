//! Criterion benchmarks of the SDK.
