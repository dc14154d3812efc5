//! A candidate that attacks the shadow stage, for benchmarks: after reading a
//! request head it sends an endless body (`endless`), a megabyte of headers
//! (`headers`), or a 100 MB body slowly (`slow-huge`).
//! Usage: `hostile_candidate ADDR MODE`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy)]
enum Mode {
    Endless,
    Headers,
    SlowHuge,
}

async fn answer(mut socket: TcpStream, mode: Mode) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    let _ = socket.read(&mut buf).await?;
    match mode {
        Mode::Endless => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = format!("{:x}\r\n{}\r\n", 65_536, "7".repeat(65_536));
            loop {
                socket.write_all(chunk.as_bytes()).await?;
            }
        }
        Mode::Headers => {
            let mut head = String::from("HTTP/1.1 200 OK\r\n");
            let line = format!("X-Padding: {}\r\n", "h".repeat(1_000));
            while head.len() < 1024 * 1024 {
                head.push_str(&line);
            }
            head.push_str("Content-Length: 2\r\n\r\n{}");
            socket.write_all(head.as_bytes()).await
        }
        Mode::SlowHuge => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
                .await?;
            let chunk = vec![b'1'; 65_536];
            for _ in 0..1_526 {
                socket.write_all(&chunk).await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18003".into());
    let mode = match args.next().as_deref() {
        Some("endless") => Mode::Endless,
        Some("headers") => Mode::Headers,
        Some("slow-huge") => Mode::SlowHuge,
        other => {
            eprintln!("mode must be endless, headers or slow-huge; got {other:?}");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = answer(socket, mode).await;
        });
    }
}
