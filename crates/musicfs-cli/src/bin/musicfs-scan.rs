//! `musicfs-scan`: bring a musicfs DB in line with music folders. Run by hand or from cron.

use clap::Parser;

/// Scan music folders into a musicfs database: tags in, virtual tree out, only the delta written.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: musicfs_cli::scan_cli::Args,
}

fn main() -> std::process::ExitCode {
    musicfs_cli::scan_cli::main_with(Cli::parse().args)
}
