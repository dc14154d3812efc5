//! Room kept on a SQLite database's disk so that counts can still be written
//! when the disk fills up.
//!
//! On a full disk SQLite cannot add a page to its log, so without room set
//! aside every write fails, counts included. The writer keeps a file of
//! [`RESERVE_BYTES`] beside the database; when a write meets a full disk it
//! deletes the file, which gives the counts room for a long while, and stops
//! writing exemplars (they are counted as lost) until the reserve can be made
//! again, that is, until there is room once more.

use std::io::Write;
use std::path::PathBuf;

use crate::store::DatabaseUrl;

/// Bytes kept in reserve: many thousands of count rows.
pub const RESERVE_BYTES: usize = 4 * 1024 * 1024;

/// How often a released reserve is tried again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The reserve file of one SQLite database (none for PostgreSQL, whose disk
/// is its server's).
#[derive(Debug)]
pub struct Reserve {
    path: Option<PathBuf>,
    released: bool,
    /// While released, when to try making it again.
    next_try: Option<std::time::Instant>,
}

impl Reserve {
    /// The reserve beside `url`'s file: `FILE-reserve`.
    pub fn beside(url: &DatabaseUrl) -> Reserve {
        let path = url.sqlite_path().map(|db| {
            let mut name = db.into_os_string();
            name.push("-reserve");
            PathBuf::from(name)
        });
        Reserve {
            path,
            released: false,
            next_try: None,
        }
    }

    /// No reserve: a store given ready-made, or not SQLite.
    pub fn none() -> Reserve {
        Reserve {
            path: None,
            released: false,
            next_try: None,
        }
    }

    /// While released, tries to make the reserve again, twice a minute at most.
    pub fn try_again(&mut self) {
        let now = std::time::Instant::now();
        if self.released && self.next_try.is_none_or(|at| now >= at) {
            self.next_try = Some(now + RETRY_EVERY);
            self.ensure();
        }
    }

    /// Whether the reserve was given up to a full disk and not made again:
    /// exemplars wait for the room to come back.
    pub fn released(&self) -> bool {
        self.released
    }

    /// Makes the reserve if it is missing; true if it is in place. Best
    /// effort: a disk without the room simply has no reserve yet.
    pub fn ensure(&mut self) -> bool {
        let Some(path) = &self.path else {
            return true;
        };
        let whole = std::fs::metadata(path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64);
        let made = whole || write_reserve(path).is_ok();
        if made && self.released {
            tracing::info!(file = %path.display(), "the database's disk has room again; exemplars are written again");
        }
        self.released = !made;
        made
    }

    /// Gives the reserve's room to the database after a write met a full disk.
    pub fn release(&mut self) {
        let Some(path) = &self.path else {
            return;
        };
        if self.released {
            return;
        }
        self.released = true;
        // The room just freed is the counts': no new reserve for a while.
        self.next_try = Some(std::time::Instant::now() + RETRY_EVERY);
        let _ = std::fs::remove_file(path);
        tracing::error!(
            file = %path.display(),
            "the database's disk is full: its reserve is released for counts, and exemplars are lost (counted) until there is room again"
        );
    }
}

fn write_reserve(path: &PathBuf) -> std::io::Result<()> {
    let written = (|| {
        let mut file = std::fs::File::create(path)?;
        let block = vec![0u8; 64 * 1024];
        for _ in 0..RESERVE_BYTES / block.len() {
            file.write_all(&block)?;
        }
        file.sync_all()
    })();
    if written.is_err() {
        // Half a reserve holds room the database needs now.
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_is_made_released_and_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let url: DatabaseUrl = format!("sqlite://{}", dir.path().join("s.db").display())
            .parse()
            .unwrap();
        let mut reserve = Reserve::beside(&url);
        let file = dir.path().join("s.db-reserve");
        assert!(reserve.ensure());
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            RESERVE_BYTES as u64
        );
        reserve.release();
        assert!(reserve.released() && !file.exists());
        // Not at once: the room just freed belongs to the counts.
        reserve.try_again();
        assert!(reserve.released() && !file.exists());
        assert!(reserve.ensure());
        assert!(!reserve.released() && file.exists());
    }
}
