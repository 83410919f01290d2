//! The one integration-test binary: every integration test is a module of it.

mod support;

mod archive;
mod browse;
mod convert;
mod delete;
mod delete_iterations;
mod emulator;
mod export;
mod faults;
mod hostile;
mod iterations;
mod listing;
mod restore;
mod resume;
mod silent;
mod spec_examples;
mod verify;
