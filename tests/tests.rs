
mod emulator;
