//! A minimal, fast HTTP backend for load benchmarks: answers every request
//! with the same 1 KB JSON document. Usage: `bench_backend ADDR`.

use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18001".into());
    let items: Vec<String> = (0..16)
        .map(|i| format!(r#"{{"id":{i},"name":"item-{i}","price":{i}.5,"tags":["a","b"]}}"#))
        .collect();
    let body: &'static str =
        Box::leak(format!(r#"{{"items":[{}],"total":16}}"#, items.join(",")).into_boxed_str());
    let router = Router::new()
        .fallback(move || async move { ([("content-type", "application/json")], body) });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, router).await
}
