//! The shared run cache: a second level, in object storage, under each machine's local run
//! cache ([`fer_core::cache`]), so that a stage one machine computed is restored on another
//! (DVC's `push` and `pull`, for our run cache).
//!
//! - **Reads:** to push, a stage's folder (`artifacts/<pipeline>/<stage>/`: its
//!   `manifest.json` and the outputs it lists, checked against their hashes first); to pull,
//!   the store at `FER_CACHE_URL`.
//! - **Writes:** the store (push); the local run cache's entry
//!   `<FER_CACHE_DIR>/<stage>/<signature>/` (pull), which the stage binary then restores like
//!   any other entry, checking every hash again.
//! - **Takes:** the URL (`file:///path`, and `s3://bucket/prefix` with the `s3` feature).
//!   Credentials come only from the environment (`AWS_*`, read by object_store) or the usual
//!   credential file (`~/.aws/credentials`, [`credentials`]), and are never printed: the URL is
//!   shown without any user or password in it ([`location::redact`]).
//!
//! The store's layout, under the URL's prefix ([`entry`]):
//! - `blobs/<h[..2]>/<h>`: an output file, named by its blake3 hash. Content-addressed: a key
//!   only ever holds one content, so two machines pushing the same stage at once cannot mix
//!   their files, and a file two stages share is stored once.
//! - `entries/<stage>/<signature>/manifest.json`: the stage's manifest, keyed by the same
//!   signature as the local cache. It lists the outputs by path and hash and is uploaded last,
//!   after every blob it names: an entry whose upload was cut short has no manifest and is
//!   never restored.
//! - `quarantine/<stage>-<signature[..12]>-<unix time>-<tag>/`: an entry whose manifest or a
//!   blob failed its check on a pull, moved aside (the manifest, and the bad blob as
//!   `<hash[..16]>.blob`) so that nobody restores it again (deleted when the store cannot copy
//!   it); the next push of that stage stores it afresh.

pub mod credentials;
pub mod entry;
pub mod error;
pub mod location;

pub use entry::{Pulled, Pushed, Remote, install};
pub use error::CacheError;
