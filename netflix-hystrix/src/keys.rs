//! Names for commands, groups, thread pools and collapsers.
//!
//! Hystrix identifies everything by name: metrics and circuit breakers per command key,
//! dashboards grouped by group key, bulkheads shared per thread-pool key. The keys are
//! cheap to clone (`Arc<str>`) and compare by value.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

macro_rules! key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Creates a key from a name.
            pub fn new(name: impl AsRef<str>) -> Self {
                Self(Arc::from(name.as_ref()))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self::new(s)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

key!(
    /// Names one command: the unit that has its own metrics and circuit breaker.
    CommandKey
);
key!(
    /// Groups commands for reporting (Hystrix's `HystrixCommandGroupKey`); also the default
    /// thread-pool key of the commands in the group.
    GroupKey
);
key!(
    /// Names a thread pool, which several commands may share.
    PoolKey
);
key!(
    /// Names a request collapser.
    CollapserKey
);
