//! Elsewhere: no network monitor; opening one says so, and the session goes on without it.

use super::Observation;
use std::io;

/// Never opened.
pub struct Source;

impl super::Source for Source {
    async fn open() -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            crate::platform::Unsupported {
                what: "a network monitor",
                os: std::env::consts::OS,
            },
        ))
    }

    async fn next(&mut self) -> io::Result<Vec<Observation>> {
        std::future::pending().await
    }
}

/// No interface indexes here.
pub fn index_of(_ifname: &str) -> Option<u32> {
    None
}
