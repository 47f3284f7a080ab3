//! `egress-proxy run`: load the config, open the listeners, serve until a
//! signal.

use std::path::Path;

use crate::cli::EXIT_ERROR;

/// Runs the proxy; returns the process exit code.
pub fn main(config: Option<&Path>) -> i32 {
    let _ = config;
    eprintln!("egress-proxy run: the data path is not built yet");
    EXIT_ERROR
}
