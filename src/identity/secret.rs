//! HS256 secrets: the configured one, or the one generated in the data directory for the
//! embedded default.
//!
//! A secret is used as the bytes of its text, surrounding whitespace removed (files
//! usually end with a newline). The generated secret is 32 random bytes written as 64 hex
//! characters, and it too is used as that text: whoever copies the file's content into
//! another JWT tool gets the same key, with no hidden decoding step to get wrong.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::{AuthConfig, KeySource};

use super::error::IdentityError;

/// Name of the generated secret inside the data directory.
const DATA_DIR_SECRET_FILE: &str = "hs256.secret";
/// Random bytes in a generated secret: the output size of SHA-256, the minimum RFC 7518
/// asks of an HS256 key.
const GENERATED_SECRET_BYTES: usize = 32;
/// Below this many bytes an HS256 secret is guessable; we warn rather than refuse so a
/// short development secret still works.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// An HMAC secret. Never printed, not even by `Debug`.
#[derive(Clone)]
pub struct HsSecret(Vec<u8>);

impl HsSecret {
    fn parse(raw: &[u8], origin: impl FnOnce() -> String) -> Result<HsSecret, IdentityError> {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(IdentityError::EmptySecret { origin: origin() });
        }
        Ok(HsSecret(trimmed.to_vec()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HsSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HsSecret(<redacted>)")
    }
}

/// The embedded default's secret, `DATA_DIR/hs256.secret`: read when present, otherwise
/// 32 random bytes hex-encoded into a new file with mode 0600 (the directory is created
/// when missing).
pub fn ensure_data_dir_secret(data_dir: &Path) -> Result<HsSecret, IdentityError> {
    let path = data_dir_secret_path(data_dir);
    match read_secret_file(&path) {
        Err(IdentityError::ReadSecret { source, .. })
            if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    fs::create_dir_all(data_dir).map_err(|source| IdentityError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let mut random = [0u8; GENERATED_SECRET_BYTES];
    getrandom::fill(&mut random).map_err(IdentityError::Random)?;
    let text = hex::encode(random);

    let mut options = fs::OpenOptions::new();
    // `create_new` rather than `create`: two processes starting on the same data directory
    // must not overwrite each other's secret; the loser reads the winner's file instead.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write_error = |source| IdentityError::WriteSecret {
        path: path.clone(),
        source,
    };
    match options.open(&path) {
        Ok(mut file) => {
            // A crash between open and write leaves an empty file, which the next start
            // reports as empty instead of silently replacing: deleting it is a human call,
            // since tokens may already have been handed out.
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(write_error)?;
            tracing::info!(path = %path.display(), "created the HS256 secret of the embedded default");
            Ok(HsSecret(text.into_bytes()))
        }
        Err(source) if source.kind() == io::ErrorKind::AlreadyExists => read_secret_file(&path),
        Err(source) => Err(write_error(source)),
    }
}

/// The HS256 secret the configuration verifies with, for `gatehouse token` to sign with.
/// Unlike start-up, the data-dir secret is never created here: a token signed with a fresh
/// secret that no running server knows would only fail later, more confusingly.
pub fn signing_secret(auth: &AuthConfig, data_dir: &Path) -> Result<HsSecret, IdentityError> {
    match auth.key_source()? {
        KeySource::Hs256Secret(secret) => config_secret(&secret),
        KeySource::Hs256SecretFile(path) => read_secret_file(&path),
        KeySource::PublicKeyPemFile(_) => Err(IdentityError::CannotSign {
            key: "auth.public_key_pem_file",
        }),
        KeySource::JwksUrl(_) => Err(IdentityError::CannotSign {
            key: "auth.jwks_url",
        }),
        KeySource::DataDir => {
            let path = data_dir_secret_path(data_dir);
            read_secret_file(&path).map_err(|error| match error {
                IdentityError::ReadSecret { source, .. }
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    IdentityError::NoDataDirSecret {
                        path,
                        dir: data_dir.to_owned(),
                    }
                }
                other => other,
            })
        }
    }
}

/// The secret of `auth.hs256_secret`.
pub(crate) fn config_secret(secret: &str) -> Result<HsSecret, IdentityError> {
    HsSecret::parse(secret.as_bytes(), || "auth.hs256_secret".to_owned())
}

/// Reads a secret file (`auth.hs256_secret_file` or the data-dir secret).
pub(crate) fn read_secret_file(path: &Path) -> Result<HsSecret, IdentityError> {
    let raw = fs::read(path).map_err(|source| IdentityError::ReadSecret {
        path: path.to_owned(),
        source,
    })?;
    warn_if_shared(path);
    HsSecret::parse(&raw, || path.display().to_string())
}

/// Anyone who can read the secret can mint tokens for any caller: say so when the file is
/// open to other users. A warning, not a refusal: some deployments mount secrets through
/// a group on purpose.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the HS256 secret file is readable by other users; `chmod 600` it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn data_dir_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DATA_DIR_SECRET_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested").join("data");
        let first = ensure_data_dir_secret(&data_dir).unwrap();
        let path = data_dir_secret_path(&data_dir);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 2 * GENERATED_SECRET_BYTES);
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(first.as_bytes(), text.trim().as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "mode {mode:o}");
        }
        let second = ensure_data_dir_secret(&data_dir).unwrap();
        assert_eq!(first.as_bytes(), second.as_bytes());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            text,
            "the file must not be rewritten"
        );
    }

    #[test]
    fn empty_secret_file_is_an_error_not_a_new_secret() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(data_dir_secret_path(dir.path()), "\n").unwrap();
        let err = ensure_data_dir_secret(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("hs256.secret") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn signing_secret_follows_the_key_source() {
        let dir = tempfile::tempdir().unwrap();
        let from_config = AuthConfig {
            hs256_secret: Some("  configured \n".into()),
            ..AuthConfig::default()
        };
        assert_eq!(
            signing_secret(&from_config, dir.path()).unwrap().as_bytes(),
            b"configured"
        );

        let file = dir.path().join("secret.txt");
        fs::write(&file, "from-file\n").unwrap();
        let from_file = AuthConfig {
            hs256_secret_file: Some(file),
            ..AuthConfig::default()
        };
        assert_eq!(
            signing_secret(&from_file, dir.path()).unwrap().as_bytes(),
            b"from-file"
        );

        let missing = AuthConfig {
            hs256_secret_file: Some(dir.path().join("nope")),
            ..AuthConfig::default()
        };
        let err = signing_secret(&missing, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read the HS256 secret file") && err.contains("nope"),
            "{err}"
        );

        let empty = AuthConfig {
            hs256_secret: Some(" ".into()),
            ..AuthConfig::default()
        };
        let err = signing_secret(&empty, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("auth.hs256_secret") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn signing_secret_needs_an_existing_data_dir_secret() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthConfig::default();
        let err = signing_secret(&auth, dir.path()).unwrap_err().to_string();
        let shown = dir.path().display();
        assert_eq!(
            err,
            format!(
                "no HS256 secret at {shown}/hs256.secret: run `gatehouse serve --data-dir {shown}` once to create one, or set auth.hs256_secret"
            )
        );
        assert!(
            !data_dir_secret_path(dir.path()).exists(),
            "must not create the secret"
        );
        let created = ensure_data_dir_secret(dir.path()).unwrap();
        assert_eq!(
            signing_secret(&auth, dir.path()).unwrap().as_bytes(),
            created.as_bytes()
        );
    }

    #[test]
    fn public_key_configurations_cannot_sign() {
        let dir = tempfile::tempdir().unwrap();
        let pem = AuthConfig {
            public_key_pem_file: Some("/keys/pub.pem".into()),
            ..AuthConfig::default()
        };
        assert_eq!(
            signing_secret(&pem, dir.path()).unwrap_err().to_string(),
            "this configuration verifies tokens with a public key (auth.public_key_pem_file); gatehouse token can only sign with an HS256 secret"
        );
        let jwks = AuthConfig {
            jwks_url: Some("https://idp.example/jwks".into()),
            ..AuthConfig::default()
        };
        assert!(
            signing_secret(&jwks, dir.path())
                .unwrap_err()
                .to_string()
                .contains("auth.jwks_url")
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = config_secret("hunter2-hunter2").unwrap();
        let shown = format!("{secret:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
