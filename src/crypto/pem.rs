//! PEM armor and the two tiny DER structures of Ed25519 key files (RFC 7468, RFC 8410).
//!
//! Only what `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write is needed:
//! PKCS#8 `PRIVATE KEY` (v1, and the v2 / OneAsymmetricKey form with an embedded public key
//! and optional attributes) and SPKI `PUBLIC KEY`. Written by hand instead of pulling in
//! `pkcs8`/`der`: the encodings are fixed byte strings around 32-byte values.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::keys::KeyError;

/// Largest PEM text accepted (an Ed25519 key file is about 120 bytes).
pub(crate) const MAX_PEM_LEN: usize = 16 * 1024;

/// PEM label of a PKCS#8 private key.
pub(crate) const PRIVATE_LABEL: &str = "PRIVATE KEY";
/// PEM label of an SPKI public key.
pub(crate) const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// DER of a PKCS#8 v1 Ed25519 private key, before the 32-byte seed.
pub(crate) const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an Ed25519 SubjectPublicKeyInfo, before the 32-byte public key.
pub(crate) const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// Content octets of the id-Ed25519 OID, 1.3.101.112.
const ED25519_OID: [u8; 3] = [0x2b, 0x65, 0x70];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_ATTRIBUTES: u8 = 0xa0; // [0] IMPLICIT, constructed
const TAG_PUBLIC_KEY: u8 = 0x81; // [1] IMPLICIT BIT STRING, primitive

/// Wraps `der` in PEM armor with `label`, base64 in lines of 64 characters.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Extracts and base64-decodes the body of the first PEM block, which must carry `label`.
///
/// Text before the `BEGIN` line is ignored (RFC 7468 "explanatory text"); CRLF is accepted.
pub(crate) fn decode(text: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    if text.len() > MAX_PEM_LEN {
        return Err(KeyError::TooLarge {
            len: text.len(),
            max: MAX_PEM_LEN,
        });
    }
    let mut lines = text.lines().map(str::trim);
    let found = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN "))
        .ok_or(KeyError::NotPem("no \"-----BEGIN\" line"))?;
    let found = found
        .strip_suffix("-----")
        .ok_or(KeyError::NotPem("malformed \"-----BEGIN\" line"))?;
    if found != label {
        return Err(KeyError::WrongLabel {
            expected: label,
            found: found.chars().take(64).collect(),
        });
    }
    let mut body = String::with_capacity(text.len());
    for line in lines {
        if let Some(end) = line.strip_prefix("-----END ") {
            if end.strip_suffix("-----") != Some(label) {
                return Err(KeyError::NotPem(
                    "\"-----END\" line does not match \"BEGIN\"",
                ));
            }
            return Ok(STANDARD.decode(body.as_bytes())?);
        }
        if line.contains(':') {
            return Err(KeyError::NotPem(
                "PEM headers are not supported (encrypted key?)",
            ));
        }
        body.push_str(line);
    }
    Err(KeyError::NotPem("no \"-----END\" line"))
}

/// A cursor over DER bytes that never indexes out of bounds.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// Reads one tag-length-value; lengths in short form or long form of one or two octets.
    fn read(&mut self) -> Result<(u8, &'a [u8]), KeyError> {
        let (&tag, rest) = self.0.split_first().ok_or(KeyError::Der("truncated"))?;
        let (&l0, mut rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
        let len = match l0 {
            0..=0x7f => usize::from(l0),
            0x81 | 0x82 => {
                let n = usize::from(l0 & 0x7f);
                if rest.len() < n {
                    return Err(KeyError::Der("truncated length"));
                }
                let (digits, after) = rest.split_at(n);
                rest = after;
                digits
                    .iter()
                    .fold(0usize, |acc, d| (acc << 8) | usize::from(*d))
            }
            _ => return Err(KeyError::Der("unsupported length encoding")),
        };
        if rest.len() < len {
            return Err(KeyError::Der("value longer than its container"));
        }
        let (value, after) = rest.split_at(len);
        self.0 = after;
        Ok((tag, value))
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], KeyError> {
        match self.read()? {
            (t, v) if t == tag => Ok(v),
            _ => Err(KeyError::Der(what)),
        }
    }
}

fn to_32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], KeyError> {
    bytes.try_into().map_err(|_| KeyError::WrongLength {
        what,
        expected: 32,
        found: bytes.len(),
    })
}

/// Checks an AlgorithmIdentifier: the Ed25519 OID and no parameters (RFC 8410 §3).
fn check_algorithm(alg: &[u8]) -> Result<(), KeyError> {
    let mut alg = Der(alg);
    let oid = alg.expect(TAG_OID, "algorithm identifier without OID")?;
    if oid != ED25519_OID {
        return Err(KeyError::WrongAlgorithm {
            oid: hex::encode(oid),
        });
    }
    if !alg.is_empty() {
        return Err(KeyError::Der(
            "Ed25519 algorithm identifier with parameters",
        ));
    }
    Ok(())
}

/// Parses a PKCS#8 (RFC 5208 / RFC 5958) Ed25519 private key: the 32-byte seed and, in the
/// v2 form, the embedded public key.
pub(crate) fn parse_pkcs8(der: &[u8]) -> Result<([u8; 32], Option<[u8; 32]>), KeyError> {
    let mut outer = Der(der);
    let body = outer.expect(TAG_SEQUENCE, "PKCS#8 is not a SEQUENCE")?;
    if !outer.is_empty() {
        return Err(KeyError::Der("trailing bytes after PKCS#8"));
    }
    let mut body = Der(body);
    let version = body.expect(TAG_INTEGER, "PKCS#8 version is not an INTEGER")?;
    let v2 = match version {
        [0] => false,
        [1] => true,
        _ => return Err(KeyError::UnsupportedVersion(hex::encode(version))),
    };
    check_algorithm(body.expect(TAG_SEQUENCE, "PKCS#8 algorithm is not a SEQUENCE")?)?;
    let wrapped = body.expect(TAG_OCTET_STRING, "PKCS#8 privateKey is not an OCTET STRING")?;
    let mut wrapped = Der(wrapped);
    let seed = wrapped.expect(TAG_OCTET_STRING, "CurvePrivateKey is not an OCTET STRING")?;
    if !wrapped.is_empty() {
        return Err(KeyError::Der("trailing bytes after CurvePrivateKey"));
    }
    let seed = to_32(seed, "Ed25519 private key")?;
    if body.peek_tag() == Some(TAG_ATTRIBUTES) {
        body.read()?;
    }
    let mut public = None;
    if body.peek_tag() == Some(TAG_PUBLIC_KEY) {
        if !v2 {
            return Err(KeyError::Der("public key in a version 0 PKCS#8"));
        }
        let bits = body.expect(TAG_PUBLIC_KEY, "public key")?;
        let key = bits
            .strip_prefix(&[0u8])
            .ok_or(KeyError::Der("public key BIT STRING with unused bits"))?;
        public = Some(to_32(key, "embedded Ed25519 public key")?);
    }
    if !body.is_empty() {
        return Err(KeyError::Der("unexpected field in PKCS#8"));
    }
    Ok((seed, public))
}

/// Parses an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4) into the raw 32-byte key.
pub(crate) fn parse_spki(der: &[u8]) -> Result<[u8; 32], KeyError> {
    let mut outer = Der(der);
    let body = outer.expect(TAG_SEQUENCE, "SubjectPublicKeyInfo is not a SEQUENCE")?;
    if !outer.is_empty() {
        return Err(KeyError::Der("trailing bytes after SubjectPublicKeyInfo"));
    }
    let mut body = Der(body);
    check_algorithm(body.expect(TAG_SEQUENCE, "SPKI algorithm is not a SEQUENCE")?)?;
    let bits = body.expect(TAG_BIT_STRING, "subjectPublicKey is not a BIT STRING")?;
    if !body.is_empty() {
        return Err(KeyError::Der("trailing bytes in SubjectPublicKeyInfo"));
    }
    let key = bits
        .strip_prefix(&[0u8])
        .ok_or(KeyError::Der("public key BIT STRING with unused bits"))?;
    to_32(key, "Ed25519 public key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encode_decode_round_trip_multiline() {
        let der: Vec<u8> = (0u8..=200).collect();
        let pem = encode("TEST", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert!(pem.lines().count() > 3);
        assert_eq!(decode(&pem, "TEST").unwrap(), der);
        let crlf = format!("explanatory text\r\n{}", pem.replace('\n', "\r\n"));
        assert_eq!(decode(&crlf, "TEST").unwrap(), der);
    }

    #[test]
    fn pem_decode_errors() {
        assert!(matches!(decode("hello", "X"), Err(KeyError::NotPem(_))));
        let pem = encode("PUBLIC KEY", &[1, 2, 3]);
        match decode(&pem, PRIVATE_LABEL) {
            Err(KeyError::WrongLabel { expected, found }) => {
                assert_eq!(expected, PRIVATE_LABEL);
                assert_eq!(found, "PUBLIC KEY");
            }
            other => panic!("{other:?}"),
        }
        let no_end = "-----BEGIN X-----\nAQID\n";
        assert!(matches!(decode(no_end, "X"), Err(KeyError::NotPem(_))));
        let mismatched = "-----BEGIN X-----\nAQID\n-----END Y-----\n";
        assert!(matches!(decode(mismatched, "X"), Err(KeyError::NotPem(_))));
        let bad_b64 = "-----BEGIN X-----\nA*ID\n-----END X-----\n";
        assert!(matches!(decode(bad_b64, "X"), Err(KeyError::Base64(_))));
        let huge = "A".repeat(MAX_PEM_LEN + 1);
        assert!(matches!(decode(&huge, "X"), Err(KeyError::TooLarge { .. })));
    }

    #[test]
    fn der_reader_never_panics_on_truncations() {
        let mut der = PKCS8_V1_PREFIX.to_vec();
        der.extend_from_slice(&[7u8; 32]);
        assert_eq!(parse_pkcs8(&der).unwrap(), ([7u8; 32], None));
        for cut in 0..der.len() {
            assert!(parse_pkcs8(&der[..cut]).is_err(), "cut {cut}");
        }
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&[9u8; 32]);
        assert_eq!(parse_spki(&spki).unwrap(), [9u8; 32]);
        for cut in 0..spki.len() {
            assert!(parse_spki(&spki[..cut]).is_err(), "cut {cut}");
        }
        // Every single-byte corruption is either rejected or still yields a 32-byte value.
        for i in 0..der.len() {
            let mut d = der.clone();
            d[i] ^= 0x80;
            let _ = parse_pkcs8(&d);
        }
    }
}
