//! Runnable applications assembled from the netflix-* crates; see `examples/README.md`.
//!
//! This library holds what the examples share: a tiny command-line flag reader, and the
//! whole platform of [`full_stack`], as a library so that its tests drive the code the
//! example runs.

pub mod full_stack;

/// Reads `--name value` flags from the command line, with defaults.
#[derive(Debug, Clone)]
pub struct Flags {
    args: Vec<String>,
}

impl Flags {
    /// The process's flags.
    pub fn from_env() -> Self {
        Self {
            args: std::env::args().skip(1).collect(),
        }
    }

    /// Whether `--name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// The value after `--name`, parsed, or `default`.
    ///
    /// # Errors
    ///
    /// When the flag has no value or the value does not parse.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => {
                let v = self
                    .args
                    .get(i + 1)
                    .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
                v.parse()
                    .map_err(|_| anyhow::anyhow!("{name}: cannot parse `{v}`"))
            }
        }
    }
}
