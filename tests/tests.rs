//! The one integration-test binary.

mod archive;
mod verify;
