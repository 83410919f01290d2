//! The one integration-test binary: every integration test is a module of it.

mod support;

mod archive;
mod browse;
mod complete;
mod conventions;
mod convert;
mod delete;
mod delete_gate;
mod delete_iterations;
mod emulator;
mod export;
mod faults;
mod findings;
mod hostile;
mod hostile_archives;
mod iterations;
mod listing;
mod pagecode;
mod plan;
mod progress;
mod remote_read;
mod remote_write;
mod restore;
mod resume;
mod robustness;
mod scale_memory;
mod sidefiles;
mod silent;
mod spec_examples;
mod storage_servers;
mod tls;
mod verify;
