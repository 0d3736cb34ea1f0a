//! Long-term Ed25519 keys: generation, signing, PEM files, key id.
//!
//! Files are what `openssl genpkey -algorithm ed25519` (PKCS#8 `PRIVATE KEY`) and
//! `openssl pkey -pubout` (SPKI `PUBLIC KEY`) write, so operators can use either tool.

use std::fmt;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;

use super::pem;
use super::random;

/// Errors from parsing or reading key material. File errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or writing a key file failed.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The operating system error.
        err: std::io::Error,
    },
    /// A key file exists but its content is wrong (the inner error says how).
    #[error("{}: {err}", path.display())]
    InFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with its content.
        err: Box<KeyError>,
    },
    /// `write_keypair` refuses to replace an existing key file.
    #[error("{}: already exists; refusing to overwrite a key file", .0.display())]
    AlreadyExists(PathBuf),
    /// The text is not PEM armor.
    #[error("not PEM: {0}")]
    NotPem(&'static str),
    /// PEM armor with a different label (for example a public key where a private key belongs).
    #[error("wrong PEM label: expected \"{expected}\", found \"{found}\"")]
    WrongLabel {
        /// The label this function reads.
        expected: &'static str,
        /// The label found (at most 64 characters of it).
        found: String,
    },
    /// The PEM body is not standard base64.
    #[error("PEM body is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The DER structure is malformed.
    #[error("malformed DER: {0}")]
    Der(&'static str),
    /// A well-formed key of another algorithm (hex of the OID content octets).
    #[error("not an Ed25519 key: algorithm OID {oid} (Ed25519 is 2b6570 = 1.3.101.112)")]
    WrongAlgorithm {
        /// Hex of the OID's content octets.
        oid: String,
    },
    /// A PKCS#8 version other than 0 (v1) or 1 (v2); hex of the INTEGER's content octets.
    #[error("unsupported PKCS#8 version 0x{0} (expected 0 or 1)")]
    UnsupportedVersion(String),
    /// A key or seed of the wrong length.
    #[error("wrong length of {what}: expected {expected} bytes, found {found}")]
    WrongLength {
        /// What was being decoded.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A PKCS#8 v2 file whose embedded public key is not the private key's.
    #[error("the embedded public key does not match the private key")]
    PublicKeyMismatch,
    /// Input larger than any key file.
    #[error("key text too large: {len} bytes (max {max})")]
    TooLarge {
        /// Size found.
        len: usize,
        /// Size allowed.
        max: usize,
    },
}

/// A long-term Ed25519 signing key (the gateway's identity key).
///
/// `Debug` prints only the key id, never secret material.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: [u8; 32],
}

impl SigningKey {
    /// Generates a fresh key from the system RNG.
    pub fn generate() -> Self {
        Self::from_seed(&random::bytes())
    }

    /// Builds the key from its 32-byte RFC 8032 seed (the "private key" of RFC 8032).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = inner.verifying_key().to_bytes();
        Self { inner, public }
    }

    /// The raw 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The key id of the public key (see [`key_id`]).
    pub fn key_id(&self) -> String {
        key_id(&self.public)
    }

    /// Signs `msg` (pure Ed25519, RFC 8032) and returns the 64-byte signature `R ‖ s`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.inner.sign(msg).to_bytes()
    }

    /// PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`), byte-identical to what
    /// `openssl genpkey -algorithm ed25519` writes for the same seed.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = [0u8; 48];
        let (prefix, seed) = der.split_at_mut(pem::PKCS8_V1_PREFIX.len());
        prefix.copy_from_slice(&pem::PKCS8_V1_PREFIX);
        seed.copy_from_slice(self.inner.as_bytes());
        pem::encode(pem::PRIVATE_LABEL, &der)
    }

    /// Parses a PKCS#8 PEM private key, v1 or v2 (v2's embedded public key must match).
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, KeyError> {
        let der = pem::decode(text, pem::PRIVATE_LABEL)?;
        let (seed, embedded_public) = pem::parse_pkcs8(&der)?;
        let key = Self::from_seed(&seed);
        match embedded_public {
            Some(p) if p != key.public => Err(KeyError::PublicKeyMismatch),
            _ => Ok(key),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of a raw Ed25519 public key, as `openssl pkey
/// -pubout` writes it.
pub fn public_to_spki_pem(public: &[u8; 32]) -> String {
    let mut der = [0u8; 44];
    let (prefix, key) = der.split_at_mut(pem::SPKI_PREFIX.len());
    prefix.copy_from_slice(&pem::SPKI_PREFIX);
    key.copy_from_slice(public);
    pem::encode(pem::PUBLIC_LABEL, &der)
}

/// Parses an SPKI PEM public key into the raw 32-byte Ed25519 key.
pub fn public_from_spki_pem(text: &str) -> Result<[u8; 32], KeyError> {
    pem::parse_spki(&pem::decode(text, pem::PUBLIC_LABEL)?)
}

/// Key id: the first 16 lowercase hex digits of SHA-256 of the raw public key (the JWT `kid`).
pub fn key_id(public: &[u8; 32]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    hex::encode(digest.as_ref().get(..8).unwrap_or_default())
}

/// File name of the private key written by [`write_keypair`].
pub const PRIVATE_FILE: &str = "private.pem";
/// File name of the public key written by [`write_keypair`].
pub const PUBLIC_FILE: &str = "public.pem";

/// Generates a key pair and writes `dir/private.pem` (mode 0600) and `dir/public.pem` (0644).
///
/// Creates `dir` if needed. Never overwrites: if either file exists, nothing is written and
/// [`KeyError::AlreadyExists`] names it.
pub fn write_keypair(dir: &Path) -> Result<SigningKey, KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| KeyError::Io { path, err }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let private_path = dir.join(PRIVATE_FILE);
    let public_path = dir.join(PUBLIC_FILE);
    for p in [&private_path, &public_path] {
        if p.exists() {
            return Err(KeyError::AlreadyExists(p.clone()));
        }
    }
    let key = SigningKey::generate();
    write_new(&private_path, 0o600, key.to_pkcs8_pem().as_bytes())?;
    if let Err(e) = write_new(
        &public_path,
        0o644,
        public_to_spki_pem(&key.public).as_bytes(),
    ) {
        // Do not leave half a key pair behind.
        let _ = fs::remove_file(&private_path);
        return Err(e);
    }
    Ok(key)
}

/// Creates `path` (failing if it exists) with `mode`, writes `data` and syncs it.
fn write_new(path: &Path, mode: u32, data: &[u8]) -> Result<(), KeyError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::AlreadyExists(path.to_path_buf()),
            _ => KeyError::Io {
                path: path.to_path_buf(),
                err,
            },
        })?;
    let written = file.write_all(data).and_then(|()| file.sync_all());
    written.map_err(|err| {
        let _ = fs::remove_file(path);
        KeyError::Io {
            path: path.to_path_buf(),
            err,
        }
    })
}

/// Reads a key file as text, capped at the PEM size limit.
fn read_text(path: &Path) -> Result<String, KeyError> {
    let io = |err| KeyError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut buf = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(pem::MAX_PEM_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    let in_file = |err| KeyError::InFile {
        path: path.to_path_buf(),
        err: Box::new(err),
    };
    if buf.len() > pem::MAX_PEM_LEN {
        return Err(in_file(KeyError::TooLarge {
            len: buf.len(),
            max: pem::MAX_PEM_LEN,
        }));
    }
    String::from_utf8(buf).map_err(|_| in_file(KeyError::NotPem("not UTF-8 text")))
}

/// Loads a PKCS#8 PEM private key file; errors name the file.
pub fn load_private(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    SigningKey::from_pkcs8_pem(&read_text(path)?).map_err(|e| KeyError::InFile {
        path: path.to_path_buf(),
        err: Box::new(e),
    })
}

/// Loads an SPKI PEM public key file into the raw 32-byte key; errors name the file.
pub fn load_public(path: impl AsRef<Path>) -> Result<[u8; 32], KeyError> {
    let path = path.as_ref();
    public_from_spki_pem(&read_text(path)?).map_err(|e| KeyError::InFile {
        path: path.to_path_buf(),
        err: Box::new(e),
    })
}

#[cfg(test)]
#[path = "keys_tests.rs"]
pub(crate) mod tests;
