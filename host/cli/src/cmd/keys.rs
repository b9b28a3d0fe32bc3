//! `pitwall keys`: API keys in the store. There is no default key: the first
//! admin key is made here, on the machine that holds the store.

use std::path::PathBuf;

use anyhow::Context;
use pitwall_store::{Role, Store};

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// The store (as `pitwall run --db`).
    #[arg(long, global = true, default_value = "pitwall.db")]
    pub db: PathBuf,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a key and print it once (only its hash is kept).
    Create {
        /// Who the key is for (a person or a system).
        #[arg(long)]
        user: String,
        /// `guest`, `user` or `admin`.
        #[arg(long)]
        role: Role,
        /// Requests per minute (default: by role).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// The keys: id, user, role, prefix, rate, revoked.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id (it stops working at the next request).
    Revoke { id: i64 },
}

pub fn run(args: &KeysArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.db)
        .with_context(|| format!("opening the store {}", args.db.display()))?;
    match &args.command {
        KeysCommand::Create { user, role, rate } => {
            let user = user.trim();
            anyhow::ensure!(!user.is_empty(), "--user must not be empty");
            let k = store.create_key(user, *role, *rate)?;
            eprintln!(
                "key {} for {user} ({}, {} requests/min); shown once, keep it:",
                k.id, k.record.role, k.record.rate_per_minute
            );
            println!("{}", k.secret);
        }
        KeysCommand::List { json } => {
            let keys = store.list_keys()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:>4}  {:<20} {:<6} {:<10} {:>8}  state",
                    "id", "user", "role", "prefix", "rate/min"
                );
                for k in keys {
                    println!(
                        "{:>4}  {:<20} {:<6} {:<10} {:>8}  {}",
                        k.id,
                        k.user,
                        k.role.to_string(),
                        k.prefix,
                        k.rate_per_minute,
                        if k.revoked { "revoked" } else { "active" }
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            anyhow::ensure!(store.revoke_key(*id)?, "no active key with id {id}");
            eprintln!("key {id} revoked");
        }
    }
    Ok(())
}
