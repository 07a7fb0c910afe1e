//! Test support shared by `lib/tests/differential.rs` and
//! `cli/tests/oracle.rs`: the Go oracle, a DER tree, the case generator.
#![allow(dead_code)]

pub mod der_tree;
pub mod gen;
pub mod oracle;
