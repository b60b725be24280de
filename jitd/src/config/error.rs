//! The one error of reading the configuration: which file, and what is wrong with it.
//! Beside the files that raise it, so neither has to import the other for it.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message.trim_end())
    }
}

impl std::error::Error for ConfigError {}
