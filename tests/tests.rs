//! The one integration-test binary: every integration test is a module of it.

mod support;

mod archive;
mod convert;
mod emulator;
mod export;
mod restore;
mod spec_examples;
mod verify;
