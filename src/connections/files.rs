//! The process's open-file limit, shared between client connections and
//! shadow calls: each client connection may cost a descriptor of its own and
//! one to the primary, each shadow call in flight one to the candidate (and,
//! in mirror mode, one to the primary). Both caps are fitted to the limit
//! once, at start, so neither side can run the other out of descriptors.

use std::num::NonZeroUsize;

use crate::config::ConnectionLimits;

/// File descriptors a client connection may cost at most: its own and one to
/// the primary.
const DESCRIPTORS_PER_CONNECTION: u64 = 2;
/// Descriptors kept for everything else: the database, the record file, logs.
const DESCRIPTORS_RESERVED: u64 = 64;
/// When both caps do not fit, the shadow side gets at most this share of
/// what is left: clients come first.
const SHADOW_SHARE_DIVISOR: u64 = 4;

/// Both caps, as fitted to the open-file limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileBudget {
    pub max_connections: NonZeroUsize,
    pub max_in_flight: NonZeroUsize,
}

/// Fits `max_connections` and `max_in_flight` shadow calls (each costing
/// `per_shadow_call` descriptors) to the process's open-file limit, logging
/// what was lowered.
pub fn fit_to_open_files(
    limits: &ConnectionLimits,
    max_in_flight: NonZeroUsize,
    per_shadow_call: u64,
) -> FileBudget {
    let wanted = FileBudget {
        max_connections: limits.max_connections,
        max_in_flight,
    };
    let Some(files) = open_file_limit() else {
        return wanted;
    };
    let fitted = fit(files, wanted, per_shadow_call);
    if fitted != wanted {
        tracing::warn!(
            open_file_limit = files,
            max_connections = wanted.max_connections.get(),
            max_connections_used = fitted.max_connections.get(),
            max_in_flight = wanted.max_in_flight.get(),
            max_in_flight_used = fitted.max_in_flight.get(),
            "caps lowered to fit the open-file limit (2 descriptors a client connection, {per_shadow_call} a shadow call, 64 kept aside); raise the limit (ulimit -n) to allow more"
        );
    }
    fitted
}

/// What fits in `files` descriptors. When everything wanted fits, it is
/// kept. Otherwise client connections come first, but the shadow side keeps
/// at least a quarter of the room: with none, nothing would be compared.
fn fit(files: u64, wanted: FileBudget, per_shadow_call: u64) -> FileBudget {
    let room = files.saturating_sub(DESCRIPTORS_RESERVED);
    let per_call = per_shadow_call.max(1);
    let shadow_need = count(wanted.max_in_flight).saturating_mul(per_call);
    let clients_need = count(wanted.max_connections).saturating_mul(DESCRIPTORS_PER_CONNECTION);
    if shadow_need.saturating_add(clients_need) <= room {
        return wanted;
    }
    let shadow_room = room
        .saturating_sub(clients_need)
        .max(room / SHADOW_SHARE_DIVISOR);
    let max_in_flight = lower(wanted.max_in_flight, shadow_room / per_call);
    let clients_room = room.saturating_sub(count(max_in_flight).saturating_mul(per_call));
    FileBudget {
        max_connections: lower(
            wanted.max_connections,
            clients_room / DESCRIPTORS_PER_CONNECTION,
        ),
        max_in_flight,
    }
}

fn count(n: NonZeroUsize) -> u64 {
    u64::try_from(n.get()).unwrap_or(u64::MAX)
}

/// `wanted`, or `fits` when that is lower, and never below one.
fn lower(wanted: NonZeroUsize, fits: u64) -> NonZeroUsize {
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    NonZeroUsize::new(wanted.get().min(fits)).unwrap_or(NonZeroUsize::MIN)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_connections: usize, max_in_flight: usize) -> FileBudget {
        FileBudget {
            max_connections: NonZeroUsize::new(max_connections).unwrap(),
            max_in_flight: NonZeroUsize::new(max_in_flight).unwrap(),
        }
    }

    #[test]
    fn what_fits_is_kept() {
        // 64 + 10,000 × 2 + 4,096 = 24,160.
        assert_eq!(fit(24_160, budget(10_000, 4_096), 1), budget(10_000, 4_096));
        assert_eq!(
            fit(1 << 20, budget(10_000, 4_096), 2),
            budget(10_000, 4_096)
        );
    }

    #[test]
    fn shadow_calls_take_what_clients_leave() {
        // Room 19,936; clients alone need 20,000: the shadow side keeps up
        // to a quarter (4,984) and clients get the rest.
        assert_eq!(fit(20_000, budget(10_000, 4_096), 1), budget(7_920, 4_096));
        // Clients fit with 9,936 to spare: the shadow side gets those.
        assert_eq!(
            fit(30_000, budget(10_000, 20_000), 1),
            budget(10_000, 9_936)
        );
    }

    #[test]
    fn a_small_limit_keeps_clients_first_and_some_shadowing() {
        // The common soft limit of 1,024: room 960, a quarter for shadow calls.
        assert_eq!(fit(1_024, budget(10_000, 4_096), 1), budget(360, 240));
        // Mirror mode: two descriptors a shadow call.
        assert_eq!(fit(1_024, budget(10_000, 4_096), 2), budget(360, 120));
    }

    #[test]
    fn never_below_one() {
        assert_eq!(fit(0, budget(10_000, 4_096), 2), budget(1, 1));
        assert_eq!(fit(65, budget(10_000, 4_096), 2), budget(1, 1));
    }
}
