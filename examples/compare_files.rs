//! Times shadowdiff's comparison of two JSON files, as the live path runs it
//! (bytes in, verdict out: parsing included, the line diff left out) and in
//! full (as a stored exemplar is compared), for side-by-side benchmarks with
//! other diff tools. Prints `live_us=.. full_us=.. matched=..`: the median
//! of ITERATIONS runs each. Usage: `compare_files PRIMARY CANDIDATE ITERATIONS`.

use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use shadowdiff::compare::{compare_responses_with, Detail, Rules};
use shadowdiff::exchange::RecordedResponse;

fn response(body: Vec<u8>) -> RecordedResponse {
    let json = HeaderValue::from_static("application/json");
    RecordedResponse::ok_with_body(Some(json), Bytes::from(body))
}

/// The median time of `iterations` runs of `f`, in microseconds.
fn median_us(iterations: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..iterations.max(1))
        .map(|_| {
            let at = Instant::now();
            f();
            at.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(p), Some(c), Some(n)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: compare_files PRIMARY CANDIDATE ITERATIONS");
        std::process::exit(2);
    };
    let read = |path: &String| std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (p, c) = (response(read(p)), response(read(c)));
    // No rules: the other tools have none either.
    let rules = Rules::default();
    let limit = 256 << 20;
    let run = |detail| compare_responses_with("GET /bench", &p, &c, &rules, (limit, detail));
    let matched = run(Detail::Full).matched;
    // Warm caches and the allocator before timing.
    for _ in 0..3 {
        std::hint::black_box(run(Detail::Grouping));
    }
    let live = median_us(n, || {
        std::hint::black_box(run(Detail::Grouping));
    });
    let full = median_us(n, || {
        std::hint::black_box(run(Detail::Full));
    });
    println!("live_us={live:.1} full_us={full:.1} matched={matched}");
}
