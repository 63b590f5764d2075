//! A TCP proxy that holds every chunk it forwards for a fixed time, each way: a network's
//! latency on loopback, for benchmarking Seismo against a database that is not on the same
//! machine (`bench/remote_db.sh`). Only latency: chunks keep their order and are not
//! throttled. Plain threads, two per connection, because their sleeps are as fine as the
//! kernel's (an async runtime's timer counts whole milliseconds); a database connection
//! pool has few connections.
//!
//! ```text
//! cargo run --release --example delay_proxy -- LISTEN UPSTREAM DELAY_MS
//! cargo run --release --example delay_proxy -- 127.0.0.1:55433 127.0.0.1:55432 0.5
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay_ms] = args.as_slice() else {
        bail!("usage: delay_proxy LISTEN UPSTREAM DELAY_MS");
    };
    let delay = Duration::from_secs_f64(delay_ms.parse::<f64>().context("DELAY_MS")? / 1000.0);
    let listener = TcpListener::bind(listen).context("listen")?;
    eprintln!("delay_proxy: {listen} -> {upstream}, {delay:?} each way");
    for client in listener.incoming() {
        let client = client?;
        let upstream = upstream.clone();
        thread::spawn(move || {
            if let Err(error) = relay(client, &upstream, delay) {
                eprintln!("delay_proxy: {error:#}");
            }
        });
    }
    Ok(())
}

/// Relays one connection both ways, each through its own delay line.
fn relay(client: TcpStream, upstream: &str, delay: Duration) -> anyhow::Result<()> {
    let server = TcpStream::connect(upstream).context("upstream")?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let to_server = delay_line(client.try_clone()?, server.try_clone()?, delay);
    let to_client = delay_line(server, client, delay);
    let _ = to_server.join();
    let _ = to_client.join();
    Ok(())
}

/// Reads chunks as they come, on a thread of its own, and writes each one `delay` after it
/// was read. Returns the reading thread.
fn delay_line(mut from: TcpStream, mut to: TcpStream, delay: Duration) -> thread::JoinHandle<()> {
    let (held, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (at, chunk) in due {
            thread::sleep(at.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0
                || held
                    .send((Instant::now() + delay, buffer[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
        drop(held);
        let _ = writer.join();
    })
}
