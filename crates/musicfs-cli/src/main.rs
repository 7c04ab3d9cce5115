//! `musicfs`: the user-facing command. Thin: every command is a call into a library crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Browse and play a huge music library by its tags")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan music folders into the database (same as `musicfs-scan`).
    Scan(musicfs_scan::cli::Args),
    /// Check the database: SQLite integrity and every invariant of the virtual tree.
    Check {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
    },
    /// Counts of files, entries, errors, and the layout in use.
    Stats {
        #[arg(long, env = "MUSICFS_DB")]
        db: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Scan(args) => musicfs_scan::cli::main_with(args),
        Command::Check { db } => report(check(db)),
        Command::Stats { db } => report(stats(db)),
    }
}

fn report(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("musicfs: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn open(db: Option<PathBuf>) -> anyhow::Result<rusqlite::Connection> {
    let db = db
        .or_else(musicfs_db::default_db_path)
        .context("no --db given and no default location")?;
    // Through the read pool: refuses foreign and newer DBs with a clear message.
    let pool = musicfs_db::ReadPool::open(&db, &musicfs_db::PoolOptions::default())?;
    drop(pool);
    Ok(rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

fn check(db: Option<PathBuf>) -> anyhow::Result<bool> {
    let conn = open(db)?;
    let problems = musicfs_db::check_consistency(&conn)?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok");
    }
    Ok(problems.is_empty())
}

fn stats(db: Option<PathBuf>) -> anyhow::Result<bool> {
    let conn = open(db)?;
    let count = |sql: &str| -> anyhow::Result<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    println!("schema version  {}", count("PRAGMA user_version")?);
    println!("origins         {}", count("SELECT count(*) FROM origins")?);
    println!("files           {}", count("SELECT count(*) FROM files")?);
    println!(
        "unreadable      {}",
        count("SELECT count(*) FROM files WHERE scan_error IS NOT NULL")?
    );
    println!("directories     {}", count("SELECT count(*) FROM dirs")?);
    println!("entries         {}", count("SELECT count(*) FROM entries")?);
    let mut stmt = conn.prepare("SELECT name, template FROM views ORDER BY id")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (name, template) = row?;
        let name = if name.is_empty() {
            "(root)".to_owned()
        } else {
            name
        };
        println!("view {name:<10} {template}");
    }
    Ok(true)
}
