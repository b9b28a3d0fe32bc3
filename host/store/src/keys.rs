//! API keys with roles, stored hashed.
//!
//! A secret is `pw_` followed by 64 hex digits of 32 bytes from the operating
//! system's random source. It is shown once, by [`Store::create_key`]; the
//! store keeps only its SHA-256 (hex) and its first 8 characters, so a list
//! of keys can say which is which without revealing any.
//!
//! Why a plain, fast SHA-256 and not a password hash (argon2, bcrypt): slow
//! hashes exist because passwords are guessable, so an attacker holding the
//! table tries likely passwords and each try must be expensive. A 256-bit
//! random secret has no likely values: inverting SHA-256 over 2^256
//! candidates is out of reach however fast each hash is. A fast hash also
//! lets every request be checked by an indexed lookup on the hash (no salt to
//! fetch first) in microseconds, which matters for a per-request check.
//! Looking up by hash also means the comparison never touches the secret
//! itself, so timing reveals nothing useful about it.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ParseNameError, SqliteContext, StoreError};
use crate::{Store, now_ms};

/// The text every secret starts with, so a leaked key is recognisable
/// (secret scanners, logs).
pub const SECRET_PREFIX: &str = "pw_";

/// Characters of the secret kept for display.
const DISPLAY_PREFIX_LEN: usize = 8;

/// What a key may do. Ordered: a route needing `User` accepts `Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Health and live battles.
    Guest,
    /// Feeds, predictions, history and exports.
    User,
    /// Plugin and model management, ingest.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Guest, Role::User, Role::Admin];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Requests per minute a key of this role gets unless created with its
    /// own rate.
    pub fn default_rate_per_minute(self) -> u32 {
        match self {
            Role::Guest => 60,
            Role::User | Role::Admin => 600,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseNameError {
                what: "role",
                value: s.to_string(),
                expected: "guest, user, admin",
            })
    }
}

/// A key as listed: everything but the secret (and never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id (for revoking).
    pub id: i64,
    /// The user it belongs to.
    pub user: String,
    /// Its role.
    pub role: Role,
    /// The first 8 characters of the secret, to tell keys apart.
    pub prefix: String,
    /// Its rate limit.
    pub rate_per_minute: u32,
    /// When it was created (wall clock, ms since the Unix epoch).
    pub created_ms: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A freshly created key: the only time its secret is available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewKey {
    /// Key id.
    pub id: i64,
    /// The secret to hand to the client; not stored, not recoverable.
    pub secret: String,
    /// What [`Store::list_keys`] will show for it.
    pub record: KeyRecord,
}

/// SHA-256 of the secret, lowercase hex: the stored form.
fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
    Ok(format!("{SECRET_PREFIX}{}", hex(&bytes)))
}

const RECORD_SELECT: &str =
    "SELECT k.id, u.name, k.role, k.prefix, k.rate_per_minute, k.created_ms,
        k.revoked_ms IS NOT NULL
     FROM api_keys k JOIN users u ON u.id = k.user_id";

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let role: String = r.get(2)?;
    let role = role.parse::<Role>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(KeyRecord {
        id: r.get(0)?,
        user: r.get(1)?,
        role,
        prefix: r.get(3)?,
        rate_per_minute: r.get(4)?,
        created_ms: r.get(5)?,
        revoked: r.get(6)?,
    })
}

impl Store {
    /// Creates a key for `user` (created on first use) with `role`, limited
    /// to `rate_per_minute` requests (the role's default when `None`).
    /// The returned secret is the only copy.
    pub fn create_key(
        &self,
        user: &str,
        role: Role,
        rate_per_minute: Option<u32>,
    ) -> Result<NewKey, StoreError> {
        let user = user.trim();
        if user.is_empty() {
            return Err(StoreError::InvalidArgument("user must not be empty".into()));
        }
        let rate = rate_per_minute.unwrap_or(role.default_rate_per_minute());
        if rate == 0 {
            return Err(StoreError::InvalidArgument(
                "rate_per_minute must be at least 1 (revoke a key to disable it)".into(),
            ));
        }
        let secret = new_secret()?;
        let prefix: String = secret.chars().take(DISPLAY_PREFIX_LEN).collect();
        let created_ms = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("beginning a key creation")?;
        tx.execute(
            "INSERT INTO users (name, created_ms) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![user, created_ms],
        )
        .ctx("creating a user")?;
        let user_id: i64 = tx
            .query_row("SELECT id FROM users WHERE name = ?1", [user], |r| r.get(0))
            .ctx("reading a user")?;
        tx.execute(
            "INSERT INTO api_keys (user_id, role, secret_sha256, prefix, rate_per_minute, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![user_id, role.as_str(), secret_hash(&secret), prefix, rate, created_ms],
        )
        .ctx("creating a key")?;
        let id = tx.last_insert_rowid();
        tx.commit().ctx("committing a key")?;
        tracing::info!(id, user, role = %role, prefix, "api key created");
        Ok(NewKey {
            id,
            secret,
            record: KeyRecord {
                id,
                user: user.to_string(),
                role,
                prefix,
                rate_per_minute: rate,
                created_ms,
                revoked: false,
            },
        })
    }

    /// The key whose secret this is; `None` for an unknown or revoked key.
    pub fn verify_key(&self, secret: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("{RECORD_SELECT} WHERE k.secret_sha256 = ?1 AND k.revoked_ms IS NULL");
        self.conn()
            .prepare_cached(&sql)
            .ctx("preparing a key lookup")?
            .query_row([secret_hash(secret)], record_from_row)
            .optional()
            .ctx("looking a key up")
    }

    /// Every key, revoked ones included, by id.
    pub fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("{RECORD_SELECT} ORDER BY k.id"))
            .ctx("preparing the key list")?;
        let keys = stmt
            .query_map([], record_from_row)
            .ctx("listing keys")?
            .collect::<Result<_, _>>()
            .ctx("reading keys")?;
        Ok(keys)
    }

    /// Revokes key `id`; `false` if there is no such key or it was already
    /// revoked. The row stays, so the list shows who had access and when.
    pub fn revoke_key(&self, id: i64) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms()],
            )
            .ctx("revoking a key")?;
        if changed > 0 {
            tracing::info!(id, "api key revoked");
        }
        Ok(changed > 0)
    }

    /// Whether any key is live (not revoked). A host with none has no
    /// default key: the first admin key is made by the CLI.
    pub fn has_keys(&self) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_ms IS NULL)",
                [],
                |r| r.get(0),
            )
            .ctx("checking for keys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::temp_store;

    #[test]
    fn create_verify_revoke() {
        let (_dir, store) = temp_store();
        assert!(!store.has_keys().unwrap());
        let admin = store.create_key("ops", Role::Admin, None).unwrap();
        let guest = store.create_key("ops", Role::Guest, Some(5)).unwrap();
        assert!(store.has_keys().unwrap());

        assert!(admin.secret.starts_with(SECRET_PREFIX));
        assert_eq!(admin.secret.len(), SECRET_PREFIX.len() + 64);
        assert!(admin.secret[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(admin.secret, guest.secret);
        assert_eq!(admin.record.prefix, &admin.secret[..8]);
        assert_eq!(admin.record.rate_per_minute, 600);
        assert_eq!(guest.record.rate_per_minute, 5);

        let got = store.verify_key(&admin.secret).unwrap().unwrap();
        assert_eq!(got, admin.record);
        assert_eq!(
            store.verify_key(&guest.secret).unwrap().unwrap().role,
            Role::Guest
        );
        assert_eq!(store.verify_key("pw_nope").unwrap(), None);
        assert_eq!(store.verify_key("").unwrap(), None);
        // A near miss (one character changed) is unknown too.
        let mut near = admin.secret.clone();
        let last = if near.ends_with('0') { "1" } else { "0" };
        near.replace_range(near.len() - 1.., last);
        assert_eq!(store.verify_key(&near).unwrap(), None);

        assert!(store.revoke_key(admin.id).unwrap());
        assert!(!store.revoke_key(admin.id).unwrap(), "already revoked");
        assert!(!store.revoke_key(9_999).unwrap(), "no such key");
        assert_eq!(store.verify_key(&admin.secret).unwrap(), None);
        assert!(store.has_keys().unwrap(), "the guest key is still live");

        let list = store.list_keys().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].revoked && !list[1].revoked);
        assert_eq!(
            (list[0].user.as_str(), list[1].user.as_str()),
            ("ops", "ops")
        );

        store.revoke_key(guest.id).unwrap();
        assert!(!store.has_keys().unwrap());
    }

    #[test]
    fn secrets_are_not_stored() {
        let (dir, store) = temp_store();
        let keys: Vec<NewKey> = (0..3)
            .map(|i| {
                store
                    .create_key(&format!("u{i}"), Role::User, None)
                    .unwrap()
            })
            .collect();
        // Everything in the key tables, as text.
        let dump: String = store
            .conn()
            .prepare(
                "SELECT u.name || ' ' || k.role || ' ' || k.secret_sha256 || ' ' || k.prefix
                 FROM api_keys k JOIN users u ON u.id = k.user_id",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("\n");
        // And every byte of the database files (main file and WAL).
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        for key in &keys {
            let hash = secret_hash(&key.secret);
            assert!(dump.contains(&hash), "the hash is what is stored");
            assert!(!dump.contains(&key.secret));
            // The part after the display prefix appears nowhere.
            let hidden = &key.secret[DISPLAY_PREFIX_LEN..];
            assert!(!bytes.windows(hidden.len()).any(|w| w == hidden.as_bytes()));
            assert!(bytes.windows(hash.len()).any(|w| w == hash.as_bytes()));
        }
    }

    #[test]
    fn invalid_arguments_are_refused() {
        let (_dir, store) = temp_store();
        assert!(matches!(
            store.create_key(" ", Role::User, None),
            Err(StoreError::InvalidArgument(_))
        ));
        assert!(matches!(
            store.create_key("u", Role::User, Some(0)),
            Err(StoreError::InvalidArgument(_))
        ));
        assert!(!store.has_keys().unwrap());
    }

    #[test]
    fn roles_order_parse_and_serialize() {
        assert!(Role::Guest < Role::User && Role::User < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!(" Admin ".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Role::Guest.default_rate_per_minute(), 60);
        assert_eq!(Role::User.default_rate_per_minute(), 600);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
