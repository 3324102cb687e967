//! The "before" of the connection-layer benchmark: the same trivial endpoint served by
//! rouille's own connection layer (tiny_http), as the design first had it
//! (`rouille::Server::new(..).pool_size(n)`), so `bench/baseline.sh` can measure starvation
//! and threads against Latchkey's own layer on the same machine.
//!
//! cargo run --release --example rouille_baseline -- 127.0.0.1:8099 8

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8099".into());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(8);
    let server = rouille::Server::new(addr, |_req: &rouille::Request| {
        rouille::Response::from_data(
            "application/json",
            r#"{"status":"success","data":{"status":"ok"}}"#,
        )
    })
    .expect("bind")
    .pool_size(threads);
    eprintln!(
        "rouille baseline on {} with pool_size {threads}",
        server.server_addr()
    );
    server.run();
}
