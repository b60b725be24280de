mod config;
mod core;
mod events;
mod shell;

fn main() {}
