//! HTTP pieces shared by the segment server, the origin and the fill client.

pub mod client;
pub mod range;
pub mod sign;
