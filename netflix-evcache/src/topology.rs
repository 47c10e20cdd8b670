//! Which servers hold the cache: server groups (one per zone, each a full copy) of nodes.
//!
//! EVCache deploys an app as one server group per availability zone; every group holds a
//! full copy of the data, sharded over its nodes by ketama. A group can be *write-only*: it
//! receives every write but serves no reads and does not count towards a write's latch
//! (how a new group is warmed up, or a resized one filled, before it takes reads).
//!
//! A topology comes from a builder, from serde (with the `serde` feature), or from the
//! `<APP>-NODES` string EVCache's `SimpleNodeListProvider` reads:
//!
//! ```text
//! us-east-1a=10.0.1.1:11211,10.0.1.2:11211;us-east-1b=10.0.2.1:11211,10.0.2.2:11211
//! ```
//!
//! Hosts may be written `host/ip:port`, as Java prints an `InetSocketAddress`.
//!
//! ```
//! use netflix_evcache::Topology;
//!
//! let t: Topology = "zone-a=127.0.0.1:11211,127.0.0.1:11212;zone-b=127.0.0.1:11213".parse()?;
//! assert_eq!(t.groups.len(), 2);
//! assert_eq!(t.groups[0].nodes.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{Error, Result};
use crate::ketama::NodeSpec;
use std::str::FromStr;

/// One server group: a full copy of the cache, usually one availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerGroup {
    /// The group's name: its zone (`us-east-1a`).
    pub name: String,
    /// The group's nodes, in order (the order does not change the ring).
    #[cfg_attr(feature = "serde", serde(with = "crate::config::nodes"))]
    pub nodes: Vec<NodeSpec>,
    /// Receives writes but serves no reads and does not count towards latches.
    #[cfg_attr(feature = "serde", serde(default))]
    pub write_only: bool,
}

impl ServerGroup {
    /// A readable group.
    pub fn new(name: impl Into<String>, nodes: Vec<NodeSpec>) -> Self {
        Self {
            name: name.into(),
            nodes,
            write_only: false,
        }
    }

    /// The same group, write-only.
    #[must_use]
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
}

/// All the server groups of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Topology {
    /// The groups.
    pub groups: Vec<ServerGroup>,
}

impl Topology {
    /// A topology of these groups.
    pub fn new(groups: Vec<ServerGroup>) -> Self {
        Self { groups }
    }

    /// Checks that there is a readable group, every group has nodes, and names are unique.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if !self.groups.iter().any(|g| !g.write_only) {
            return Err(Error::Config(
                "the topology has no readable server group".into(),
            ));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.nodes.is_empty() {
                return Err(Error::Config(format!(
                    "server group `{}` has no nodes",
                    g.name
                )));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(Error::Config(format!(
                    "server group `{}` appears twice",
                    g.name
                )));
            }
        }
        Ok(())
    }

    /// The `<APP>-NODES` string of this topology (write-only groups are not in the format
    /// and are left out).
    pub fn to_nodes_string(&self) -> String {
        self.groups
            .iter()
            .filter(|g| !g.write_only)
            .map(|g| {
                let nodes: Vec<String> = g.nodes.iter().map(ToString::to_string).collect();
                format!("{}={}", g.name, nodes.join(","))
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

impl FromStr for Topology {
    type Err = Error;

    /// Parses EVCache's `<APP>-NODES` format: `group=host:port,host:port;group2=...`.
    fn from_str(s: &str) -> Result<Self> {
        let mut groups = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, list) = part
                .split_once('=')
                .ok_or_else(|| Error::Config(format!("`{part}`: expected group=host:port,...")))?;
            let nodes = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    n.parse::<NodeSpec>()
                        .map_err(|e| Error::Config(e.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            groups.push(ServerGroup::new(name.trim(), nodes));
        }
        let t = Topology { groups };
        t.validate()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_strings_round_trip() {
        let s = "a=10.0.1.1:11211,host-2/10.0.1.2:11211;b=10.0.2.1:11212";
        let t: Topology = s.parse().unwrap();
        assert_eq!(t.groups[0].nodes[1].host.as_deref(), Some("host-2"));
        assert_eq!(t.to_nodes_string(), s);
    }

    #[test]
    fn bad_topologies_are_config_errors() {
        for bad in [
            "",
            "a",
            "a=",
            "a=host",
            "a=1.2.3.4:1;a=1.2.3.4:2",
            "a=1.2.3.4:x",
        ] {
            assert!(
                matches!(bad.parse::<Topology>(), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        let only_write = Topology::new(vec![
            ServerGroup::new("w", vec![NodeSpec::new("127.0.0.1", 1)]).write_only(),
        ]);
        assert!(only_write.validate().is_err());
    }
}
