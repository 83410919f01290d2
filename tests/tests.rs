//! The single integration-test binary (ripgrep style: `autotests = false`).

mod spec_examples;
