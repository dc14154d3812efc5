//! An open-loop load generator for benchmarks: sends GET requests at a fixed
//! rate whatever the pace of the answers (as real clients arrive), over
//! keep-alive connections, then prints what it achieved on one line:
//! `sent=N ok=N failed=N rate=R p50_ms=.. p99_ms=.. max_ms=..`.
//! A closed loop (wrk) slows down with the server and hides queueing; this
//! does not. Usage: `open_loop URL RATE SECONDS`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests still unanswered past this many are not sent but counted as
/// failed: the generator must not run out of memory on a stalled server.
const MAX_OUTSTANDING: usize = 50_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(rate), Some(seconds)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|r| r.parse::<f64>().ok()),
        args.get(3).and_then(|s| s.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: open_loop URL RATE SECONDS");
        std::process::exit(2);
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .expect("a client");
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let total = (rate * seconds) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        // As many as the schedule says by now: the rate holds even when a
        // tick comes late.
        let due = ((started.elapsed().as_secs_f64() * rate) as u64).min(total);
        while sent < due {
            sent += 1;
            if outstanding.load(std::sync::atomic::Ordering::Relaxed) >= MAX_OUTSTANDING {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            outstanding.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (client, url) = (client.clone(), url.clone());
            let (latencies, failed, outstanding) =
                (latencies.clone(), failed.clone(), outstanding.clone());
            tasks.spawn(async move {
                let at = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                outstanding.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                match ok {
                    true => latencies
                        .lock()
                        .unwrap()
                        .push(at.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    false => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    let sending = started.elapsed().as_secs_f64();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let at = |q: f64| {
        l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |&us| us as f64 / 1000.0)
    };
    println!(
        "sent={sent} ok={} failed={} rate={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        l.len(),
        failed.load(std::sync::atomic::Ordering::Relaxed) + tasks.len() as u64,
        sent as f64 / sending,
        at(0.5),
        at(0.99),
        l.last().map_or(0.0, |&us| us as f64 / 1000.0)
    );
}
