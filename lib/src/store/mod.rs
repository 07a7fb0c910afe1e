//! The store: a certs directory on disk, loaded into a [`crate::mesh::Mesh`]
//! and saved back all-or-nothing under the directory's lock.

mod tx;

pub use tx::{is_temp_name, leftovers, DirLock, Transaction, LOCK_FILE};
