//! Fleet mode's effects: the etcd client, the sync thread that watches the shared store and
//! feeds verified records to the daemon, presence and acknowledgements. It never decides
//! whether a record grants access: `core::fleet` does.

pub mod allowed_signers_file;
pub mod etcd;
pub mod gc;
pub mod link;
pub mod presence;
pub mod sync;
