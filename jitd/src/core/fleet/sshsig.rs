//! OpenSSH SSHSIG signatures (PROTOCOL.sshsig): parsing the armour and verifying with ring.
//!
//! An approver signs with the SSH key they already have (a key file, their ssh-agent, a FIDO
//! token), so hosts must read exactly what `ssh-keygen -Y sign` writes. Everything here reads
//! bytes an attacker may have written into the shared store: every length is checked against
//! what is left, the armour is bounded, names from the blob are quoted (escaped) in errors
//! because hosts write the errors to the audit log, and anything not understood is refused
//! with the reason rather than skipped.
//!
//! Supported: ssh-ed25519, ecdsa-sha2-nistp256/384, RSA (≥ 2048 bits) with rsa-sha2-256/512
//! signatures, and the FIDO kinds sk-ssh-ed25519@openssh.com and
//! sk-ecdsa-sha2-nistp256@openssh.com (PROTOCOL.u2f; the user-presence flag is required).
//! Not supported: RSA-SHA1 (`ssh-rsa` signatures, as ssh-keygen refuses them too), DSA,
//! nistp521 (ring has no P-521), certificates, webauthn signatures.

// Wired into `jitd approve` and the fleet sync by the rest of fleet mode; until then only the
// tests call it.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use ring::digest;
use ring::signature::{self as ringsig, RsaPublicKeyComponents, UnparsedPublicKey};

/// The SSHSIG namespace of a fleet approval: a signature made for anything else (git commits,
/// files, another version of this protocol) never counts as one.
pub const NAMESPACE: &str = "jit-grant@v1";

/// The largest armoured signature read. A 8192-bit RSA signature is about 2.2 KiB armoured;
/// anything near this bound is not a signature.
pub const MAX_ARMORED_BYTES: usize = 16 * 1024;

const MAGIC: &[u8] = b"SSHSIG";
const VERSION: u32 = 1;
const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const END: &str = "-----END SSH SIGNATURE-----";
/// PROTOCOL.sshsig says "SHOULD be broken up every 76 characters"; ssh-keygen uses 70.
const ARMOR_WIDTH: usize = 70;
const MIN_RSA_BITS: usize = 2048;
/// ring verifies RSA moduli up to 8192 bits.
const MAX_RSA_BITS: usize = 8192;
/// FIDO's "user present" flag (PROTOCOL.u2f; SSH_SK_USER_PRESENCE_REQD in OpenSSH).
const SK_USER_PRESENT: u8 = 0x01;

/// Why a signature (or key) is not accepted. The text is for the audit log and the operator:
/// it says what was wrong, never just "invalid".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// The armoured text is larger than [`MAX_ARMORED_BYTES`].
    TooLarge { len: usize, max: usize },
    /// The `-----BEGIN SSH SIGNATURE-----` wrapping or its base64 is broken.
    BadArmor(String),
    /// The decoded blob (or a key) does not follow the wire format.
    Malformed(String),
    /// An SSHSIG version other than 1.
    UnsupportedVersion(u32),
    /// A key type this verifier does not support.
    UnsupportedKey(String),
    /// A hash other than sha256 / sha512.
    UnsupportedHash(String),
    /// The signature's algorithm does not belong to the key (or is not supported for it).
    SignatureAlgorithmMismatch { key: String, signature: String },
    /// An RSA signature with SHA-1 (`ssh-rsa`).
    RsaSha1,
    /// An RSA key shorter than 2048 bits (or longer than ring verifies).
    RsaKeySize(usize),
    /// The signature was made for another namespace.
    WrongNamespace { expected: String, got: String },
    /// A FIDO signature made without a touch.
    NoUserPresence,
    /// The cryptographic check failed: the message, the namespace or the signature was changed,
    /// or the key did not make it.
    BadSignature,
    /// The signature is valid but its key is not allowed for the principal.
    KeyNotAllowed {
        fingerprint: String,
        principal: String,
    },
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigError::TooLarge { len, max } => write!(
                f,
                "signature is {len} bytes, more than the {max} bytes an SSH signature can be"
            ),
            SigError::BadArmor(why) => write!(f, "bad signature armour: {why}"),
            SigError::Malformed(why) => write!(f, "malformed signature: {why}"),
            SigError::UnsupportedVersion(v) => {
                write!(f, "unsupported SSHSIG version {v} (only 1 is supported)")
            }
            SigError::UnsupportedKey(t) => write!(
                f,
                "unsupported key type {t:?} (supported: ssh-ed25519, ecdsa-sha2-nistp256, \
                 ecdsa-sha2-nistp384, ssh-rsa of 2048 bits or more, sk-ssh-ed25519@openssh.com, \
                 sk-ecdsa-sha2-nistp256@openssh.com)"
            ),
            SigError::UnsupportedHash(h) => {
                write!(f, "unsupported hash algorithm {h:?} (sha256 or sha512)")
            }
            SigError::SignatureAlgorithmMismatch { key, signature } => write!(
                f,
                "signature algorithm {signature:?} does not match the key type {key:?}"
            ),
            SigError::RsaSha1 => write!(
                f,
                "RSA signature uses SHA-1 (ssh-rsa), which is refused: sign with rsa-sha2-512"
            ),
            SigError::RsaKeySize(bits) => write!(
                f,
                "RSA key of {bits} bits refused: RSA keys must have {MIN_RSA_BITS} to \
                 {MAX_RSA_BITS} bits"
            ),
            SigError::WrongNamespace { expected, got } => {
                write!(f, "signature is for namespace {got:?}, not {expected:?}")
            }
            SigError::NoUserPresence => write!(
                f,
                "FIDO signature was made without user presence (no touch of the key)"
            ),
            SigError::BadSignature => write!(
                f,
                "bad signature: it does not match the message, the namespace and the key"
            ),
            SigError::KeyNotAllowed {
                fingerprint,
                principal,
            } => write!(
                f,
                "key {fingerprint} is not in allowed_signers for {principal:?}"
            ),
        }
    }
}

impl std::error::Error for SigError {}

/// The hash an SSHSIG applies to the message before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha512,
}

impl HashAlg {
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha512 => "sha512",
        }
    }

    fn from_name(name: &str) -> Result<HashAlg, SigError> {
        match name {
            "sha256" => Ok(HashAlg::Sha256),
            "sha512" => Ok(HashAlg::Sha512),
            other => Err(SigError::UnsupportedHash(other.to_string())),
        }
    }

    fn digest(self, message: &[u8]) -> digest::Digest {
        match self {
            HashAlg::Sha256 => digest::digest(&digest::SHA256, message),
            HashAlg::Sha512 => digest::digest(&digest::SHA512, message),
        }
    }
}

/// What a key is, decoded from its wire blob once, so verification never re-parses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    Ed25519 {
        public: [u8; 32],
    },
    SkEd25519 {
        public: [u8; 32],
        application: Vec<u8>,
    },
    Ecdsa {
        curve: Curve,
        point: Vec<u8>,
    },
    SkEcdsaP256 {
        point: Vec<u8>,
        application: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// An SSH public key: its algorithm name and its wire blob (RFC 4253 and friends). Two keys
/// are equal when their blobs are, as OpenSSH compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: String,
    blob: Vec<u8>,
    kind: KeyKind,
}

impl PublicKey {
    /// The key as it appears in `authorized_keys` or a `.pub` file: `type base64 [comment]`.
    /// The comment is ignored; the type must name the blob's own type.
    pub fn parse_openssh(line: &str) -> Result<PublicKey, SigError> {
        let mut fields = line.split_ascii_whitespace();
        let algorithm = fields
            .next()
            .ok_or_else(|| SigError::Malformed("empty public key".into()))?;
        let encoded = fields
            .next()
            .ok_or_else(|| SigError::Malformed(format!("no key data after {algorithm:?}")))?;
        let blob = STANDARD
            .decode(encoded)
            .map_err(|e| SigError::Malformed(format!("key data is not base64: {e}")))?;
        let key = PublicKey::from_blob(&blob)?;
        if key.algorithm != algorithm {
            return Err(SigError::Malformed(format!(
                "key says {algorithm:?} but its data is a {:?} key",
                key.algorithm
            )));
        }
        Ok(key)
    }

    /// Decodes a wire blob; refuses key types that cannot be verified here.
    pub fn from_blob(blob: &[u8]) -> Result<PublicKey, SigError> {
        let mut r = Reader::new(blob);
        let algorithm = r.text("key type")?.to_string();
        let kind = match algorithm.as_str() {
            "ssh-ed25519" => KeyKind::Ed25519 {
                public: ed25519_public(r.string("Ed25519 key")?)?,
            },
            "sk-ssh-ed25519@openssh.com" => KeyKind::SkEd25519 {
                public: ed25519_public(r.string("Ed25519 key")?)?,
                application: r.string("FIDO application")?.to_vec(),
            },
            "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" => {
                let curve = if algorithm.ends_with("256") {
                    Curve::P256
                } else {
                    Curve::P384
                };
                let point = ecdsa_point(&mut r, &algorithm)?;
                KeyKind::Ecdsa { curve, point }
            }
            "sk-ecdsa-sha2-nistp256@openssh.com" => KeyKind::SkEcdsaP256 {
                point: ecdsa_point(&mut r, &algorithm)?,
                application: r.string("FIDO application")?.to_vec(),
            },
            "ssh-rsa" => {
                let e = unsigned(r.mpint("RSA exponent")?).to_vec();
                let n = unsigned(r.mpint("RSA modulus")?).to_vec();
                let bits = bit_length(&n);
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(SigError::RsaKeySize(bits));
                }
                KeyKind::Rsa { n, e }
            }
            other => return Err(SigError::UnsupportedKey(other.to_string())),
        };
        r.finish("key")?;
        Ok(PublicKey {
            algorithm,
            blob: blob.to_vec(),
            kind,
        })
    }

    /// The key type, e.g. `ssh-ed25519`.
    #[cfg(test)]
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The wire blob (what ssh-agent lists and what an SSHSIG carries).
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Whether signing with this key through ssh-agent needs the RSA SHA-2 flag.
    pub fn is_rsa(&self) -> bool {
        matches!(self.kind, KeyKind::Rsa { .. })
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let hash = digest::digest(&digest::SHA256, &self.blob);
        format!("SHA256:{}", STANDARD_NO_PAD.encode(hash.as_ref()))
    }

    /// Checks one SSH signature blob (`string algorithm, string signature, …`) over `data`.
    fn verify_raw(&self, ssh_signature: &[u8], data: &[u8]) -> Result<(), SigError> {
        let mut r = Reader::new(ssh_signature);
        let sig_alg = r.text("signature algorithm")?.to_string();
        let mismatch = || SigError::SignatureAlgorithmMismatch {
            key: self.algorithm.clone(),
            signature: sig_alg.clone(),
        };
        match &self.kind {
            KeyKind::Ed25519 { public } => {
                if sig_alg != self.algorithm {
                    return Err(mismatch());
                }
                let sig = r.string("Ed25519 signature")?;
                r.finish("signature")?;
                check(&ringsig::ED25519, public, data, sig)
            }
            KeyKind::Rsa { n, e } => {
                let params = match sig_alg.as_str() {
                    "rsa-sha2-256" => &ringsig::RSA_PKCS1_2048_8192_SHA256,
                    "rsa-sha2-512" => &ringsig::RSA_PKCS1_2048_8192_SHA512,
                    "ssh-rsa" => return Err(SigError::RsaSha1),
                    _ => return Err(mismatch()),
                };
                let sig = r.string("RSA signature")?;
                r.finish("signature")?;
                RsaPublicKeyComponents { n, e }
                    .verify(params, data, sig)
                    .map_err(|_| SigError::BadSignature)
            }
            KeyKind::Ecdsa { curve, point } => {
                if sig_alg != self.algorithm {
                    return Err(mismatch());
                }
                let (alg, width): (&ringsig::EcdsaVerificationAlgorithm, usize) = match curve {
                    Curve::P256 => (&ringsig::ECDSA_P256_SHA256_FIXED, 32),
                    Curve::P384 => (&ringsig::ECDSA_P384_SHA384_FIXED, 48),
                };
                let fixed = ecdsa_fixed(r.string("ECDSA signature")?, width)?;
                r.finish("signature")?;
                check(alg, point, data, &fixed)
            }
            KeyKind::SkEd25519 {
                public,
                application,
            } => {
                if sig_alg != self.algorithm {
                    return Err(mismatch());
                }
                let sig = r.string("Ed25519 signature")?.to_vec();
                let signed = sk_signed_data(&mut r, application, data)?;
                check(&ringsig::ED25519, public, &signed, &sig)
            }
            KeyKind::SkEcdsaP256 { point, application } => {
                if sig_alg != self.algorithm {
                    return Err(mismatch());
                }
                let fixed = ecdsa_fixed(r.string("ECDSA signature")?, 32)?;
                let signed = sk_signed_data(&mut r, application, data)?;
                // OpenSSH verifies ECDSA over SHA-256 of this blob: what ring's
                // ECDSA_P256_SHA256 does with the blob as its message.
                check(&ringsig::ECDSA_P256_SHA256_FIXED, point, &signed, &fixed)
            }
        }
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, STANDARD.encode(&self.blob))
    }
}

fn check(
    alg: &'static dyn ringsig::VerificationAlgorithm,
    public: &[u8],
    data: &[u8],
    sig: &[u8],
) -> Result<(), SigError> {
    UnparsedPublicKey::new(alg, public)
        .verify(data, sig)
        .map_err(|_| SigError::BadSignature)
}

/// The FIDO tail of a signature (flags, counter) and the data the token signed over
/// (PROTOCOL.u2f): SHA256(application) ‖ flags ‖ counter ‖ SHA256(data). No extensions are
/// defined for SSH, and OpenSSH signs none.
fn sk_signed_data(r: &mut Reader, application: &[u8], data: &[u8]) -> Result<Vec<u8>, SigError> {
    let flags = r.u8("FIDO flags")?;
    let counter = r.u32("FIDO counter")?;
    r.finish("signature")?;
    if flags & SK_USER_PRESENT == 0 {
        return Err(SigError::NoUserPresence);
    }
    let mut signed = Vec::with_capacity(32 + 1 + 4 + 32);
    signed.extend_from_slice(digest::digest(&digest::SHA256, application).as_ref());
    signed.push(flags);
    signed.extend_from_slice(&counter.to_be_bytes());
    signed.extend_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    Ok(signed)
}

fn ed25519_public(bytes: &[u8]) -> Result<[u8; 32], SigError> {
    bytes
        .try_into()
        .map_err(|_| SigError::Malformed(format!("Ed25519 key is {} bytes, not 32", bytes.len())))
}

fn ecdsa_point(r: &mut Reader, algorithm: &str) -> Result<Vec<u8>, SigError> {
    let curve = r.text("ECDSA curve")?;
    let (expected, len) = if algorithm.contains("nistp384") {
        ("nistp384", 97)
    } else {
        ("nistp256", 65)
    };
    if curve != expected {
        return Err(SigError::Malformed(format!(
            "{algorithm} key names curve {curve:?}"
        )));
    }
    let point = r.string("ECDSA point")?;
    // Uncompressed points only, as OpenSSH writes them; ring checks the point is on the curve.
    if point.len() != len || point[0] != 0x04 {
        return Err(SigError::Malformed(format!(
            "ECDSA point of {} bytes is not an uncompressed {curve} point",
            point.len()
        )));
    }
    Ok(point.to_vec())
}

/// RFC 5656's `mpint r, mpint s` as the fixed-width r ‖ s ring verifies.
fn ecdsa_fixed(blob: &[u8], width: usize) -> Result<Vec<u8>, SigError> {
    let mut r = Reader::new(blob);
    let mut out = Vec::with_capacity(2 * width);
    for what in ["ECDSA r", "ECDSA s"] {
        let v = unsigned(r.mpint(what)?);
        if v.len() > width {
            return Err(SigError::Malformed(format!("{what} is too long")));
        }
        out.resize(out.len() + width - v.len(), 0);
        out.extend_from_slice(v);
    }
    r.finish("ECDSA signature")?;
    Ok(out)
}

/// An mpint's magnitude without its leading zero bytes (ring refuses them).
fn unsigned(mpint: &[u8]) -> &[u8] {
    let first = mpint.iter().position(|&b| b != 0).unwrap_or(mpint.len());
    &mpint[first..]
}

fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// The bytes the key signs for an SSHSIG (PROTOCOL.sshsig §3):
/// "SSHSIG" ‖ string(namespace) ‖ string(reserved = "") ‖ string(hash) ‖ string(H(message)).
pub fn signed_data(namespace: &str, hash: HashAlg, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(MAGIC);
    put_string(&mut out, namespace.as_bytes());
    put_string(&mut out, b"");
    put_string(&mut out, hash.name().as_bytes());
    put_string(&mut out, hash.digest(message).as_ref());
    out
}

/// An SSHSIG: who signed (the key), for which namespace, with which hash, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    key: PublicKey,
    namespace: String,
    reserved: Vec<u8>,
    hash: HashAlg,
    ssh_signature: Vec<u8>,
}

impl Signature {
    /// Wraps what a key signed over [`signed_data`]`(namespace, hash, …)` (an SSH signature
    /// blob, as ssh-agent returns it). Not checked here: call [`Signature::verify`].
    pub fn from_parts(
        key: PublicKey,
        namespace: &str,
        hash: HashAlg,
        ssh_signature: Vec<u8>,
    ) -> Signature {
        Signature {
            key,
            namespace: namespace.to_string(),
            reserved: Vec::new(),
            hash,
            ssh_signature,
        }
    }

    /// Reads what `ssh-keygen -Y sign` writes. Leading and trailing whitespace is ignored;
    /// anything else around the armour is refused.
    pub fn parse_armored(text: &str) -> Result<Signature, SigError> {
        if text.len() > MAX_ARMORED_BYTES {
            return Err(SigError::TooLarge {
                len: text.len(),
                max: MAX_ARMORED_BYTES,
            });
        }
        let body = text
            .trim()
            .strip_prefix(BEGIN)
            .ok_or_else(|| SigError::BadArmor(format!("it does not start with {BEGIN}")))?
            .strip_suffix(END)
            .ok_or_else(|| SigError::BadArmor(format!("it does not end with {END}")))?;
        if !body.starts_with(['\n', '\r']) || !body.ends_with('\n') {
            return Err(SigError::BadArmor(
                "the header and the footer must be on lines of their own".into(),
            ));
        }
        let mut encoded = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '\n' | '\r' => {}
                'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' | '=' => encoded.push(c),
                other => {
                    return Err(SigError::BadArmor(format!(
                        "character {other:?} in the base64 body"
                    )))
                }
            }
        }
        let blob = STANDARD
            .decode(&encoded)
            .map_err(|e| SigError::BadArmor(format!("the body is not base64: {e}")))?;
        Signature::from_blob(&blob)
    }

    /// Decodes the SSHSIG blob (PROTOCOL.sshsig §2).
    pub fn from_blob(blob: &[u8]) -> Result<Signature, SigError> {
        let mut r = Reader::new(blob);
        if r.take(MAGIC.len(), "preamble")? != MAGIC {
            return Err(SigError::Malformed("it does not start with SSHSIG".into()));
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(SigError::UnsupportedVersion(version));
        }
        let key = PublicKey::from_blob(r.string("public key")?)?;
        let namespace = r.text("namespace")?.to_string();
        if namespace.is_empty() {
            return Err(SigError::Malformed("the namespace is empty".into()));
        }
        let reserved = r.string("reserved")?.to_vec();
        let hash = HashAlg::from_name(r.text("hash algorithm")?)?;
        let ssh_signature = r.string("signature")?.to_vec();
        r.finish("SSHSIG")?;
        Ok(Signature {
            key,
            namespace,
            reserved,
            hash,
            ssh_signature,
        })
    }

    /// The key that claims to have signed (only true once [`Signature::verify`] passed).
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    #[cfg(test)]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    #[cfg(test)]
    pub fn hash(&self) -> HashAlg {
        self.hash
    }

    /// Whether `key()` signed `message` for `namespace`. Says nothing about whether the key
    /// is trusted: that is `allowed_signers`' job.
    pub fn verify(&self, namespace: &str, message: &[u8]) -> Result<(), SigError> {
        if self.namespace != namespace {
            return Err(SigError::WrongNamespace {
                expected: namespace.to_string(),
                got: self.namespace.clone(),
            });
        }
        // Over an empty `reserved`, whatever the blob carries: PROTOCOL.sshsig says to ignore
        // it, and ssh-keygen verifies (and signs) exactly this.
        let data = signed_data(&self.namespace, self.hash, message);
        self.key.verify_raw(&self.ssh_signature, &data)
    }

    /// The SSHSIG blob.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        put_string(&mut out, &self.key.blob);
        put_string(&mut out, self.namespace.as_bytes());
        put_string(&mut out, &self.reserved);
        put_string(&mut out, self.hash.name().as_bytes());
        put_string(&mut out, &self.ssh_signature);
        out
    }

    /// The armoured text, as `ssh-keygen -Y sign` writes it (ending with a newline).
    pub fn armor(&self) -> String {
        let encoded = STANDARD.encode(self.to_blob());
        let mut out = String::with_capacity(encoded.len() + 80);
        out.push_str(BEGIN);
        out.push('\n');
        for chunk in encoded.as_bytes().chunks(ARMOR_WIDTH) {
            // base64 is ASCII.
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        out
    }
}

/// Appends an SSH `string` (u32 length ‖ bytes).
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over SSH wire data that never reads past its end.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn short(what: &str) -> SigError {
        SigError::Malformed(format!("{what} is cut short"))
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SigError> {
        if n > self.rest.len() {
            return Err(Self::short(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, SigError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, SigError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn string(&mut self, what: &str) -> Result<&'a [u8], SigError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    pub fn text(&mut self, what: &str) -> Result<&'a str, SigError> {
        std::str::from_utf8(self.string(what)?)
            .map_err(|_| SigError::Malformed(format!("{what} is not UTF-8")))
    }

    /// A non-negative mpint (keys and signatures have no negative numbers).
    fn mpint(&mut self, what: &str) -> Result<&'a [u8], SigError> {
        let v = self.string(what)?;
        if v.first().is_some_and(|&b| b & 0x80 != 0) {
            return Err(SigError::Malformed(format!("{what} is negative")));
        }
        Ok(v)
    }

    pub fn finish(&self, what: &str) -> Result<(), SigError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SigError::Malformed(format!(
                "{} unexpected bytes after the {what}",
                self.rest.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    /// Made by OpenSSH 9.2: `ssh-keygen -t ed25519`, then
    /// `printf 'hello\n' | ssh-keygen -Y sign -n jit-grant@v1 -f k`.
    const OPENSSH_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxfa1c5meqTmx4r6DzBA4ASab6MarwRgS9HOXzmAmWH alice@x";
    const OPENSSH_SIG: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgfF9rVzmZ6pObHivoPMEDgBJpvo
xqvBGBL0c5fOYCZYcAAAAMaml0LWdyYW50QHYxAAAAAAAAAAZzaGE1MTIAAABTAAAAC3Nz
aC1lZDI1NTE5AAAAQEKzVJvie8cUV0aR7o7Npc6RQHwFFoMg0nvCmmcRxTtuaYKaA72uyL
yTumqSbWXr6PnydqFtEQsyUp5zHnE5pAE=
-----END SSH SIGNATURE-----
";

    fn ed25519_key(seed: u8) -> (Ed25519KeyPair, PublicKey) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, pair.public_key().as_ref());
        (pair, PublicKey::from_blob(&blob).unwrap())
    }

    fn ed25519_sign(seed: u8, namespace: &str, message: &[u8]) -> Signature {
        let (pair, key) = ed25519_key(seed);
        let sig = pair.sign(&signed_data(namespace, HashAlg::Sha512, message));
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, sig.as_ref());
        Signature::from_parts(key, namespace, HashAlg::Sha512, blob)
    }

    /// A FIDO signature without hardware: a synthetic sk-ssh-ed25519 key whose "token" is a
    /// ring key pair, signing what PROTOCOL.u2f says a token signs.
    fn sk_ed25519_sign(flags: u8, message: &[u8]) -> Signature {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let mut key = Vec::new();
        put_string(&mut key, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut key, pair.public_key().as_ref());
        put_string(&mut key, b"ssh:");
        let data = signed_data(NAMESPACE, HashAlg::Sha512, message);
        let mut token = Vec::new();
        token.extend_from_slice(digest::digest(&digest::SHA256, b"ssh:").as_ref());
        token.push(flags);
        token.extend_from_slice(&42u32.to_be_bytes());
        token.extend_from_slice(digest::digest(&digest::SHA256, &data).as_ref());
        let sig = pair.sign(&token);
        let mut blob = Vec::new();
        put_string(&mut blob, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut blob, sig.as_ref());
        blob.push(flags);
        blob.extend_from_slice(&42u32.to_be_bytes());
        let key = PublicKey::from_blob(&key).unwrap();
        Signature::from_parts(key, NAMESPACE, HashAlg::Sha512, blob)
    }

    fn mpint(out: &mut Vec<u8>, v: &[u8]) {
        let v = unsigned(v);
        let mut m = Vec::new();
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            m.push(0);
        }
        m.extend_from_slice(v);
        put_string(out, &m);
    }

    fn rsa_key(bits: usize) -> PublicKey {
        let mut n = vec![0xc5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-rsa");
        mpint(&mut blob, &[1, 0, 1]);
        mpint(&mut blob, &n);
        PublicKey::from_blob(&blob).unwrap()
    }

    #[test]
    fn a_signature_made_by_ssh_keygen_verifies_and_names_its_key() {
        let sig = Signature::parse_armored(OPENSSH_SIG).unwrap();
        let key = PublicKey::parse_openssh(OPENSSH_KEY).unwrap();
        assert_eq!(sig.key(), &key);
        assert_eq!(sig.hash(), HashAlg::Sha512);
        assert_eq!(sig.namespace(), NAMESPACE);
        assert_eq!(sig.verify(NAMESPACE, b"hello\n"), Ok(()));
        // As `ssh-keygen -lf k.pub` prints it.
        assert_eq!(
            key.fingerprint(),
            "SHA256:SFIv+zvcFLofz+NX79yhxL6f6WGQEhCXME2IHcEHFdk"
        );
        assert_eq!(
            key.to_string(),
            OPENSSH_KEY.trim_end_matches(" alice@x").to_string()
        );
        // Armouring again gives ssh-keygen's text byte for byte.
        assert_eq!(sig.armor(), OPENSSH_SIG);
    }

    #[test]
    fn a_changed_message_or_namespace_is_refused() {
        let sig = Signature::parse_armored(OPENSSH_SIG).unwrap();
        assert_eq!(
            sig.verify(NAMESPACE, b"hello\n!"),
            Err(SigError::BadSignature)
        );
        assert_eq!(
            sig.verify("git", b"hello\n"),
            Err(SigError::WrongNamespace {
                expected: "git".into(),
                got: NAMESPACE.into()
            })
        );
        // A signature made for "file" is not one for jit, even over the same bytes.
        let other = ed25519_sign(1, "file", b"grant");
        let e = other.verify(NAMESPACE, b"grant").unwrap_err();
        assert_eq!(
            e.to_string(),
            "signature is for namespace \"file\", not \"jit-grant@v1\""
        );
        // Rewriting the namespace in the blob breaks the signature.
        let forged = Signature {
            namespace: NAMESPACE.into(),
            ..other
        };
        assert_eq!(
            forged.verify(NAMESPACE, b"grant"),
            Err(SigError::BadSignature)
        );
    }

    #[test]
    fn another_keys_signature_under_my_key_is_refused() {
        let mine = ed25519_sign(1, NAMESPACE, b"m");
        let theirs = ed25519_sign(2, NAMESPACE, b"m");
        let swapped = Signature {
            key: mine.key.clone(),
            ..theirs
        };
        assert_eq!(swapped.verify(NAMESPACE, b"m"), Err(SigError::BadSignature));
        assert_eq!(mine.verify(NAMESPACE, b"m"), Ok(()));
    }

    #[test]
    fn ecdsa_p256_signatures_verify_with_their_mpint_encoding() {
        let rng = SystemRandom::new();
        let alg = &ringsig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let mut key = Vec::new();
        put_string(&mut key, b"ecdsa-sha2-nistp256");
        put_string(&mut key, b"nistp256");
        put_string(&mut key, pair.public_key().as_ref());
        let key = PublicKey::from_blob(&key).unwrap();
        for _ in 0..8 {
            let data = signed_data(NAMESPACE, HashAlg::Sha256, b"m");
            let fixed = pair.sign(&rng, &data).unwrap();
            let mut inner = Vec::new();
            mpint(&mut inner, &fixed.as_ref()[..32]);
            mpint(&mut inner, &fixed.as_ref()[32..]);
            let mut blob = Vec::new();
            put_string(&mut blob, b"ecdsa-sha2-nistp256");
            put_string(&mut blob, &inner);
            let sig = Signature::from_parts(key.clone(), NAMESPACE, HashAlg::Sha256, blob);
            let sig = Signature::parse_armored(&sig.armor()).unwrap();
            assert_eq!(sig.verify(NAMESPACE, b"m"), Ok(()));
            assert_eq!(sig.verify(NAMESPACE, b"n"), Err(SigError::BadSignature));
        }
    }

    #[test]
    fn a_fido_signature_counts_only_with_the_touch_flag() {
        assert_eq!(sk_ed25519_sign(0x01, b"m").verify(NAMESPACE, b"m"), Ok(()));
        assert_eq!(
            sk_ed25519_sign(0x05, b"m").verify(NAMESPACE, b"m"),
            Ok(()),
            "user verification on top of presence"
        );
        assert_eq!(
            sk_ed25519_sign(0x00, b"m").verify(NAMESPACE, b"m"),
            Err(SigError::NoUserPresence)
        );
        assert_eq!(
            sk_ed25519_sign(0x01, b"m").verify(NAMESPACE, b"x"),
            Err(SigError::BadSignature)
        );
        // Flipping the flag after the fact breaks the signature.
        let mut sig = sk_ed25519_sign(0x00, b"m");
        let n = sig.ssh_signature.len();
        sig.ssh_signature[n - 5] = 0x01;
        assert_eq!(sig.verify(NAMESPACE, b"m"), Err(SigError::BadSignature));
    }

    #[test]
    fn rsa_sha1_and_short_rsa_keys_are_refused() {
        let key = rsa_key(2048);
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-rsa");
        put_string(&mut blob, &[0u8; 256]);
        let sig = Signature::from_parts(key.clone(), NAMESPACE, HashAlg::Sha512, blob);
        assert_eq!(sig.verify(NAMESPACE, b"m"), Err(SigError::RsaSha1));
        assert!(SigError::RsaSha1.to_string().contains("SHA-1"));

        let mut blob = Vec::new();
        put_string(&mut blob, b"rsa-sha2-512");
        put_string(&mut blob, &[0u8; 256]);
        let sig = Signature::from_parts(key, NAMESPACE, HashAlg::Sha512, blob);
        assert_eq!(sig.verify(NAMESPACE, b"m"), Err(SigError::BadSignature));

        let mut small = Vec::new();
        put_string(&mut small, b"ssh-rsa");
        mpint(&mut small, &[1, 0, 1]);
        mpint(&mut small, &[0xc5; 128]);
        assert_eq!(
            PublicKey::from_blob(&small),
            Err(SigError::RsaKeySize(1024))
        );
    }

    #[test]
    fn a_signature_algorithm_foreign_to_the_key_is_refused() {
        let good = ed25519_sign(1, NAMESPACE, b"m");
        let mut blob = Vec::new();
        put_string(&mut blob, b"rsa-sha2-512");
        put_string(&mut blob, &good.ssh_signature[19..]);
        let sig = Signature {
            ssh_signature: blob,
            ..good
        };
        assert!(matches!(
            sig.verify(NAMESPACE, b"m"),
            Err(SigError::SignatureAlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn broken_armour_and_blobs_are_refused_with_the_reason() {
        let e = |text: &str| Signature::parse_armored(text).unwrap_err();
        assert!(matches!(e(""), SigError::BadArmor(_)));
        assert!(matches!(e("hello"), SigError::BadArmor(_)));
        assert!(matches!(
            e(&OPENSSH_SIG.replace("-----END SSH SIGNATURE-----", "")),
            SigError::BadArmor(_)
        ));
        assert!(matches!(
            e(&OPENSSH_SIG.replace("AAAAAAAAAAZz", "AAAA*AAAAAZz")),
            SigError::BadArmor(_)
        ));
        assert!(matches!(
            e(&format!("junk\n{OPENSSH_SIG}")),
            SigError::BadArmor(_)
        ));
        // Every truncation of the body is refused (never a panic, never accepted).
        let blob = Signature::parse_armored(OPENSSH_SIG).unwrap().to_blob();
        for cut in 0..blob.len() {
            assert!(Signature::from_blob(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = blob.clone();
        long.push(0);
        assert!(matches!(
            Signature::from_blob(&long),
            Err(SigError::Malformed(_))
        ));
        let mut v2 = blob.clone();
        v2[9] = 2;
        assert_eq!(
            Signature::from_blob(&v2),
            Err(SigError::UnsupportedVersion(2))
        );
        // A length field claiming 4 GiB is refused, not allocated.
        let mut huge = blob.clone();
        huge[10..14].copy_from_slice(&[0xff; 4]);
        assert!(matches!(
            Signature::from_blob(&huge),
            Err(SigError::Malformed(_))
        ));
        let big = format!("{OPENSSH_SIG}{}", " ".repeat(MAX_ARMORED_BYTES));
        assert!(matches!(e(&big), SigError::TooLarge { .. }));
        assert!(e(&big).to_string().contains("more than the 16384 bytes"));
    }

    #[test]
    fn unsupported_hashes_and_keys_are_named() {
        let mut sig = Signature::parse_armored(OPENSSH_SIG).unwrap().to_blob();
        let at = sig.windows(6).position(|w| w == b"sha512").unwrap();
        sig[at..at + 6].copy_from_slice(b"sha384");
        assert_eq!(
            Signature::from_blob(&sig),
            Err(SigError::UnsupportedHash("sha384".into()))
        );
        let mut dsa = Vec::new();
        put_string(&mut dsa, b"ssh-dss");
        assert_eq!(
            PublicKey::from_blob(&dsa),
            Err(SigError::UnsupportedKey("ssh-dss".into()))
        );
        // Attacker-chosen names are quoted, so a newline cannot forge an audit line.
        let e = SigError::UnsupportedKey("x\nAUDIT ok".into()).to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(matches!(
            PublicKey::parse_openssh(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHxfa1c5meqTmx4r6DzBA4ASab6MarwRgS9HOXzmAmWH"
            ),
            Err(SigError::Malformed(_))
        ));
    }
}
