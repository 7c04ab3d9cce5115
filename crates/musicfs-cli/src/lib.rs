//! Code shared by the `musicfs` and `musicfs-scan` binaries. Binary-facing: errors are
//! `anyhow` here, typed in every library crate below.

pub mod config;
pub mod scan_cli;
