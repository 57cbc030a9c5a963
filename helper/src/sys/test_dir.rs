//! For tests only: a fresh directory under the system's temp dir, removed on drop — the one
//! every test module that works on real files (the journal, the store, the atomic writer, the
//! DNS file method and its watch) uses.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// `<temp>/warren-<what>-test-<pid>-<n>`, created empty; removed with everything in it on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new directory, unique within this process and across processes.
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "warren-{what}-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The names in its subdirectory `sub` ("" for itself), sorted: to see that no temporary
    /// file is left behind.
    pub fn names(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.0.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
