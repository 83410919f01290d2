mod support;
mod export;
