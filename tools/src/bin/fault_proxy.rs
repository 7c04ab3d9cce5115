//! `musicfs-fault-proxy --to PORT [--delay-ms N] [--rate BYTES_PER_S]`: forwards a free port
//! on 127.0.0.1 to 127.0.0.1:PORT with added one-way delay (each direction) and throttling.
//! Prints the port it listens on, then runs until killed; with `--stats FILE` it keeps FILE
//! holding the bytes forwarded so far (`down up`: server to client, client to server), so a
//! benchmark counts what really crossed the wire. Used by the benchmarks.

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The server's port on 127.0.0.1.
    #[arg(long)]
    to: u16,
    /// Delay added to each direction, in milliseconds (the round trip grows by twice this).
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// Bytes per second per direction and connection (0: unlimited).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// A file rewritten every 100 ms with `DOWN UP`, the bytes forwarded so far.
    #[arg(long)]
    stats: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let proxy = musicfs_tools::proxy::FaultProxy::start(args.to)?;
    proxy.set_delay(std::time::Duration::from_secs_f64(args.delay_ms / 1000.0));
    proxy.set_rate(args.rate);
    println!("{}", proxy.port);
    loop {
        match &args.stats {
            Some(file) => {
                let (down, up) = proxy.bytes();
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, format!("{down} {up}\n"))?;
                std::fs::rename(&tmp, file)?;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            None => std::thread::park(),
        }
    }
}
