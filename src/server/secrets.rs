//! Secrets Tally must be able to read back but a database dump must not
//! give away (webhook signing secrets), sealed with ChaCha20-Poly1305
//! under a key that lives outside the database: `TALLY_SECRET_KEY` (64 hex
//! characters), else a key file (`TALLY_SECRET_KEY_FILE`, by default
//! `tally.key` beside a SQLite database, or `data/tally.key`), made on first
//! start. Every node of a PostgreSQL deployment must be given the same key.
//!
//! A sealed value is `enc1:<hex of nonce and ciphertext>`, bound to its
//! row's id (the associated data), so it cannot be moved to another row.

use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "enc1:";

/// The sealing key.
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

impl Default for SecretBox {
    /// A random key, for processes that keep no sealed secrets across runs
    /// (tests, the benchmark).
    fn default() -> Self {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).expect("the system's random source works");
        SecretBox::from_key(key)
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> SecretBox {
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key"));
        SecretBox { key, rng: SystemRandom::new() }
    }

    /// Whether `stored` is sealed (else it is a plain value from before).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// `plain`, sealed for the row `id`.
    pub fn seal(&self, id: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system's random source works");
        let mut out = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(id.as_bytes()), &mut out)
            .expect("sealing a short secret");
        let mut all = nonce.to_vec();
        all.extend(out);
        format!("{PREFIX}{}", hex::encode(all))
    }

    /// The value sealed for row `id`; a plain (unsealed) value as it is.
    pub fn open(&self, id: &str, stored: &str) -> Result<String, String> {
        let Some(hexed) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let fail = || {
            format!(
                "the secret of `{id}` cannot be opened with this node's key: every node must share one \
                 TALLY_SECRET_KEY (or key file)"
            )
        };
        let mut all = hex::decode(hexed).map_err(|_| fail())?;
        if all.len() < NONCE_LEN {
            return Err(fail());
        }
        let body = all.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&all).map_err(|_| fail())?;
        let mut body = body;
        let plain = self.key.open_in_place(nonce, Aad::from(id.as_bytes()), &mut body).map_err(|_| fail())?;
        String::from_utf8(plain.to_vec()).map_err(|_| fail())
    }
}

/// Where the key file is when `TALLY_SECRET_KEY_FILE` does not say: beside
/// a SQLite database, else `data/tally.key`.
pub fn default_key_file(database_url: &str) -> PathBuf {
    match super::store::sqlite_file(database_url) {
        Some(db) => db.parent().unwrap_or(Path::new(".")).join("tally.key"),
        None => PathBuf::from("data/tally.key"),
    }
}

fn parse_key(text: &str, from: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
        anyhow::anyhow!("{from} must be 64 hex characters (32 bytes; `openssl rand -hex 32` makes one)")
    })?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// The key: `TALLY_SECRET_KEY` if set, else the key file, made (readable by
/// its owner only) when missing.
pub fn load(key: Option<&str>, file: &Path) -> anyhow::Result<SecretBox> {
    if let Some(k) = key {
        return Ok(SecretBox::from_key(parse_key(k, "TALLY_SECRET_KEY")?));
    }
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(SecretBox::from_key(parse_key(&text, &format!("the key file {}", file.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            SystemRandom::new().fill(&mut key).map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            use std::io::Write;
            let mut f =
                opts.open(file).map_err(|e| anyhow::anyhow!("cannot create the key file {}: {e}", file.display()))?;
            f.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
            f.sync_all()?;
            tracing::info!(file = %file.display(), "made a new secret key for sealing webhook secrets; keep it with the database's backups");
            Ok(SecretBox::from_key(key))
        }
        Err(e) => Err(anyhow::anyhow!("cannot read the key file {}: {e}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let a = SecretBox::default();
        let sealed = a.seal("wh_1", "whsec_abc");
        assert!(SecretBox::is_sealed(&sealed) && !sealed.contains("whsec_abc"), "{sealed}");
        assert_ne!(sealed, a.seal("wh_1", "whsec_abc"), "a fresh nonce each time");
        assert_eq!(a.open("wh_1", &sealed).unwrap(), "whsec_abc");
        assert!(a.open("wh_2", &sealed).unwrap_err().contains("TALLY_SECRET_KEY"), "bound to its row");
        assert!(SecretBox::default().open("wh_1", &sealed).is_err(), "another key cannot open it");
        assert_eq!(a.open("wh_1", "whsec_plain").unwrap(), "whsec_plain");
    }

    #[test]
    fn the_key_file_is_made_once_and_read_after() {
        let dir = std::env::temp_dir().join(format!("tally-key-{}", uuid::Uuid::new_v4().simple()));
        let file = dir.join("tally.key");
        let sealed = load(None, &file).unwrap().seal("x", "s");
        assert_eq!(load(None, &file).unwrap().open("x", &sealed).unwrap(), "s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(load(Some("abc"), &file).unwrap_err().to_string().contains("64 hex"));
        let k = "00".repeat(32);
        assert!(load(Some(&k), &file).unwrap().open("x", &sealed).is_err());
        assert_eq!(default_key_file("sqlite://data/tally.db"), PathBuf::from("data/tally.key"));
        assert_eq!(default_key_file("postgres://u@h/db"), PathBuf::from("data/tally.key"));
        assert_eq!(
            default_key_file("sqlite:///var/lib/tally/t.db?mode=rwc"),
            PathBuf::from("/var/lib/tally/tally.key")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
