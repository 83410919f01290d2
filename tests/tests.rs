//! The one integration-test binary: every integration test is a module of it.

mod support;

mod archive;
mod delete;
mod emulator;
mod export;
mod faults;
mod resume;
mod spec_examples;
mod verify;
