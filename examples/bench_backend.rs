//! A minimal, fast HTTP backend for load benchmarks: answers every request
//! with the same 1 KB JSON document, after DELAY_MS when given (a slow
//! candidate), written as a Python service would (spaced, keys in another
//! order) when the third argument is `reformatted`: equal JSON, other bytes.
//! Usage: `bench_backend ADDR [DELAY_MS] [same|reformatted]`.

use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18001".into());
    let items: Vec<String> = (0..16)
        .map(|i| format!(r#"{{"id":{i},"name":"item-{i}","price":{i}.5,"tags":["a","b"]}}"#))
        .collect();
    let compact = format!(r#"{{"items":[{}],"total":16}}"#, items.join(","));
    let body = match std::env::args().nth(3).as_deref() {
        Some("reformatted") => {
            let items: Vec<String> = (0..16)
                .map(|i| {
                    format!(
                        r#"{{"tags": ["a", "b"], "price": {i}.5, "name": "item-{i}", "id": {i}}}"#
                    )
                })
                .collect();
            format!(r#"{{"total": 16, "items": [{}]}}"#, items.join(", "))
        }
        _ => compact,
    };
    let body: &'static str = Box::leak(body.into_boxed_str());
    let delay = std::time::Duration::from_millis(
        std::env::args()
            .nth(2)
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    );
    let router = Router::new().fallback(move || async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        ([("content-type", "application/json")], body)
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, router).await
}
