//! Example applications of the SDK.
