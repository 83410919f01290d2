mod support;

mod emulator;
mod export;
mod spec_examples;
