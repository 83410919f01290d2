//! The one integration-test binary: every integration test is a module of it.

mod support;

mod archive;
mod browse;
mod emulator;
mod export;
mod spec_examples;
mod verify;
