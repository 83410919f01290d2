mod support;
mod export;
mod spec_examples;
