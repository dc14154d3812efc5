//! The process's open-file limit, which bounds how many client connections
//! can be served at once: each may cost a descriptor of its own and one to
//! each backend.

use crate::config::ConnectionLimits;

/// File descriptors a client connection may cost at most: its own, and one
/// each to the primary and the candidate.
const DESCRIPTORS_PER_CONNECTION: u64 = 3;
/// Descriptors kept for everything else: the database, the record file, logs.
const DESCRIPTORS_RESERVED: u64 = 64;

/// The cap actually used: the configured one, lowered to what the process's
/// open-file limit can hold.
pub fn effective_cap(limits: &ConnectionLimits) -> usize {
    let configured = limits.max_connections.get();
    match open_file_limit() {
        Some(files) => {
            let fits = files.saturating_sub(DESCRIPTORS_RESERVED) / DESCRIPTORS_PER_CONNECTION;
            let fits = usize::try_from(fits).unwrap_or(usize::MAX).max(1);
            if fits < configured {
                tracing::warn!(
                    max_connections = configured,
                    open_file_limit = files,
                    used = fits,
                    "max_connections lowered to fit the open-file limit (3 descriptors a connection); raise the limit (ulimit -n) to allow more"
                );
            }
            configured.min(fits)
        }
        None => configured,
    }
}

/// Raises the soft open-file limit to the hard one, as servers commonly do:
/// the soft default (often 1,024) is far below what a proxy needs.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        #[allow(unsafe_code, reason = "no safe wrapper for the open-file limit in std")]
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct given.
        #[allow(unsafe_code, reason = "no safe wrapper for the open-file limit in std")]
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}
