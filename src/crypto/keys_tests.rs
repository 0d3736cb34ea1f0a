//! Tests of `keys.rs`: RFC 8032 vectors, PEM round trips, openssl interoperability, files.

use super::*;
use std::process::Command;

/// RFC 8032 §7.1 Ed25519 vectors: (secret seed, public key, message, signature), all hex.
pub(crate) const RFC8032: [(&str, &str, &str, &str); 4] = [
    (
        // TEST 1
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        // TEST 2
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        // TEST 3
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        // TEST SHA(abc): the message is SHA-512("abc")
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
];

pub(crate) fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

pub(crate) fn h64(s: &str) -> [u8; 64] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Made with `openssl genpkey -algorithm ed25519` (OpenSSL 3.0.19).
const OPENSSL_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIH8qPkfb9g57BJyvZB/at1naRNvG4mRPKOhu+3FaUuFb
-----END PRIVATE KEY-----
";
/// `openssl pkey -in <above> -pubout`.
const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAg+l1w8i/uPz1LY5yvN38oWSgIWi80G8Sufd563R4fAY=
-----END PUBLIC KEY-----
";
/// The raw public key `openssl pkey -text` printed for it.
const OPENSSL_PUBLIC_HEX: &str = "83e975c3c8bfb8fcf52d8e72bcddfca164a02168bcd06f12b9f779eb74787c06";
/// An X25519 key from `openssl genpkey -algorithm x25519` (OID 1.3.101.110).
const OPENSSL_X25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIIBQ78Ho0aYUWWMCHUDzf1X6PXXrOzjTJJn3W7C1LRJy
-----END PRIVATE KEY-----
";
/// RFC 8410 §10.3: PKCS#8 v2 with attributes and the embedded public key
/// 19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1.
const RFC8410_V2: &str = "-----BEGIN PRIVATE KEY-----
MHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
oB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB
Z9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PRIVATE KEY-----
";

#[test]
fn rfc8032_vectors_sign() {
    for (seed, public, msg, sig) in RFC8032 {
        let key = SigningKey::from_seed(&h32(seed));
        assert_eq!(key.public(), h32(public), "public key of seed {seed}");
        let msg = hex::decode(msg).unwrap();
        assert_eq!(key.sign(&msg), h64(sig), "signature of seed {seed}");
    }
}

#[test]
fn sha_abc_message_is_sha512_of_abc() {
    let d = ring::digest::digest(&ring::digest::SHA512, b"abc");
    assert_eq!(hex::encode(d.as_ref()), RFC8032[3].2);
}

#[test]
fn pem_round_trip_and_layout() {
    let key = SigningKey::generate();
    let pem = key.to_pkcs8_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
    let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(back.public(), key.public());
    assert_eq!(back.sign(b"m"), key.sign(b"m"));
    let p = key.public();
    assert_eq!(public_from_spki_pem(&public_to_spki_pem(&p)).unwrap(), p);
}

#[test]
fn fixed_openssl_pem_matches_openssl_pubout() {
    let key = SigningKey::from_pkcs8_pem(OPENSSL_PRIVATE).unwrap();
    assert_eq!(key.public(), h32(OPENSSL_PUBLIC_HEX));
    assert_eq!(public_from_spki_pem(OPENSSL_PUBLIC).unwrap(), key.public());
    // Our writers produce exactly openssl's bytes.
    assert_eq!(key.to_pkcs8_pem(), OPENSSL_PRIVATE);
    assert_eq!(public_to_spki_pem(&key.public()), OPENSSL_PUBLIC);
}

#[test]
fn pkcs8_v2_with_public_key_and_attributes() {
    let key = SigningKey::from_pkcs8_pem(RFC8410_V2).unwrap();
    assert_eq!(
        hex::encode(key.public()),
        "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
    );
    // v2 without attributes, built by hand, and with a public key that does not match.
    let seed = [5u8; 32];
    let public = SigningKey::from_seed(&seed).public();
    let v2 = |pk: &[u8; 32]| {
        let mut der = hex::decode("3051020101300506032b657004220420").unwrap();
        der.extend_from_slice(&seed);
        der.extend_from_slice(&[0x81, 0x21, 0x00]);
        der.extend_from_slice(pk);
        pem::encode("PRIVATE KEY", &der)
    };
    assert_eq!(
        SigningKey::from_pkcs8_pem(&v2(&public)).unwrap().public(),
        public
    );
    let mut other = public;
    other[0] ^= 1;
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&v2(&other)),
        Err(KeyError::PublicKeyMismatch)
    ));
}

#[test]
fn parse_errors_say_what_is_wrong() {
    assert!(matches!(
        SigningKey::from_pkcs8_pem(OPENSSL_X25519_PRIVATE),
        Err(KeyError::WrongAlgorithm { ref oid }) if oid == "2b656e"
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem(OPENSSL_PUBLIC),
        Err(KeyError::WrongLabel { .. })
    ));
    assert!(matches!(
        public_from_spki_pem(OPENSSL_PRIVATE),
        Err(KeyError::WrongLabel { .. })
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem("not a key"),
        Err(KeyError::NotPem(_))
    ));
    // A 31-byte seed.
    let mut der = hex::decode("302d020100300506032b65700421041f").unwrap();
    der.extend_from_slice(&[1u8; 31]);
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&pem::encode("PRIVATE KEY", &der)),
        Err(KeyError::WrongLength {
            expected: 32,
            found: 31,
            ..
        })
    ));
    // Version 2 is unknown.
    let mut der = hex::decode("302e020102300506032b657004220420").unwrap();
    der.extend_from_slice(&[1u8; 32]);
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&pem::encode("PRIVATE KEY", &der)),
        Err(KeyError::UnsupportedVersion(_))
    ));
}

#[test]
fn key_id_is_sha256_prefix() {
    let p = h32(RFC8032[0].1);
    let id = key_id(&p);
    assert_eq!(id.len(), 16);
    let full = ring::digest::digest(&ring::digest::SHA256, &p);
    assert!(hex::encode(full.as_ref()).starts_with(&id));
    assert_ne!(key_id(&h32(RFC8032[1].1)), id);
}

#[test]
fn debug_does_not_leak_the_seed() {
    let key = SigningKey::from_seed(&h32(RFC8032[0].0));
    let dbg = format!("{key:?}");
    assert!(dbg.contains(&key.key_id()));
    assert!(!dbg.contains("9d61b1"));
}

#[test]
fn openssl_generated_key_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    let gen = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .output();
    let Ok(gen) = gen else {
        eprintln!("note: openssl not found; skipping openssl_generated_key_parses");
        return;
    };
    assert!(gen.status.success(), "{gen:?}");
    let pubout = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(pubout.status.success());
    let key = load_private(&path).unwrap();
    let public = public_from_spki_pem(std::str::from_utf8(&pubout.stdout).unwrap()).unwrap();
    assert_eq!(key.public(), public);

    // And openssl reads what we write: its public key of our private file is ours.
    let ours = dir.path().join("ours.pem");
    std::fs::write(&ours, key.to_pkcs8_pem()).unwrap();
    let pubout = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&ours)
        .output()
        .unwrap();
    assert!(pubout.status.success());
    assert_eq!(
        String::from_utf8(pubout.stdout).unwrap(),
        public_to_spki_pem(&public)
    );
}

#[test]
fn write_and_load_keypair_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("keys");
    let key = write_keypair(&sub).unwrap();
    let mode = |f| std::fs::metadata(sub.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(PRIVATE_FILE), 0o600);
    assert_eq!(mode(PUBLIC_FILE) & 0o600, 0o600);
    let loaded = load_private(sub.join(PRIVATE_FILE)).unwrap();
    assert_eq!(loaded.public(), key.public());
    assert_eq!(load_public(sub.join(PUBLIC_FILE)).unwrap(), key.public());
    // Never overwritten.
    match write_keypair(&sub) {
        Err(KeyError::AlreadyExists(p)) => assert!(p.ends_with(PRIVATE_FILE)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        load_private(sub.join(PRIVATE_FILE)).unwrap().public(),
        key.public()
    );
}

#[test]
fn load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = load_private(&missing).unwrap_err();
    assert!(matches!(err, KeyError::Io { .. }));
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let wrong = dir.path().join("wrong.pem");
    std::fs::write(&wrong, OPENSSL_PUBLIC).unwrap();
    let err = load_private(&wrong).unwrap_err();
    assert!(err.to_string().contains("wrong.pem"), "{err}");
    assert!(err.to_string().contains("PUBLIC KEY"), "{err}");
    let err = load_public(dir.path().join("nope.pem")).unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");

    let binary = dir.path().join("bin.pem");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00]).unwrap();
    let err = load_public(&binary).unwrap_err();
    assert!(matches!(err, KeyError::InFile { .. }), "{err}");
}
