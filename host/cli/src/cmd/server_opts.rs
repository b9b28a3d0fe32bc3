//! The serving options `pitwall run` and `pitwall replay --listen` share: the
//! history store and who may call the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use pitwall_server::Auth;
use pitwall_store::Store;

/// Whether the server checks API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthSetting {
    /// Keys when the store holds any; with none, open on a loopback address
    /// and a refusal to start on any other.
    Auto,
    /// Keys always (refuses to start when the store holds none).
    Keys,
    /// No keys: every caller is an admin.
    Off,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServerOptions {
    /// The history store: an SQLite file (created, and migrated, if needed)
    /// keeping races, drivers, stories, predictions, laps, users and API keys.
    #[arg(long, default_value = "pitwall.db")]
    pub db: PathBuf,
    /// Keep no history (no `/history`, `/analytics`, exports; keys cannot be
    /// checked, so `--auth keys` is refused).
    #[arg(long)]
    pub no_store: bool,
    /// API keys: `auto` (checked once `pitwall keys create` made one; until
    /// then open, on loopback only), `keys`, or `off`.
    #[arg(long, value_enum, default_value = "auto")]
    pub auth: AuthSetting,
    /// With keys on: requests per minute a caller without a key may make,
    /// per client address.
    #[arg(long, default_value_t = pitwall_server::auth::DEFAULT_GUEST_RATE_PER_MINUTE)]
    pub guest_rate: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            db: PathBuf::from("pitwall.db"),
            no_store: false,
            auth: AuthSetting::Auto,
            guest_rate: pitwall_server::auth::DEFAULT_GUEST_RATE_PER_MINUTE,
        }
    }
}

impl ServerOptions {
    /// Opens the store (unless `--no-store`) and decides the auth mode for a
    /// server on `addr`, saying which on stderr.
    pub fn open(&self, addr: SocketAddr) -> anyhow::Result<(Option<Store>, Auth)> {
        let store = if self.no_store {
            None
        } else {
            Some(
                Store::open(&self.db)
                    .with_context(|| format!("opening the store {}", self.db.display()))?,
            )
        };
        let has_keys = match &store {
            Some(s) => s.has_keys().context("reading API keys")?,
            None => false,
        };
        let create = format!(
            "create one with `pitwall keys create --user NAME --role admin --db {}`",
            self.db.display()
        );
        let auth = match (self.auth, &store) {
            (AuthSetting::Off, _) => {
                if !addr.ip().is_loopback() {
                    eprintln!("warning: --auth off on {addr}: anyone who can reach it is an admin");
                }
                Auth::off()
            }
            (AuthSetting::Keys, None) => bail!("--auth keys needs the store (drop --no-store)"),
            (AuthSetting::Keys, Some(_)) if !has_keys => {
                bail!(
                    "--auth keys, but {} holds no API key: {create}",
                    self.db.display()
                )
            }
            (AuthSetting::Keys | AuthSetting::Auto, Some(s)) if has_keys => {
                Auth::keys(s.clone(), self.guest_rate)
            }
            (AuthSetting::Auto, _) if addr.ip().is_loopback() => {
                eprintln!("auth: off (no API keys yet; loopback only): {create}");
                Auth::off()
            }
            (AuthSetting::Auto, _) => {
                bail!("refusing to serve on {addr} without API keys: {create}, or pass --auth off")
            }
            (AuthSetting::Keys, Some(_)) => unreachable!("covered above"),
        };
        Ok((store, auth))
    }
}
