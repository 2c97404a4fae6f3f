//! The tenant containers' secrets as files, not environment variables:
//! `docker inspect` shows a container's environment to anyone who may talk
//! to the engine, while a file is shown to nobody. Each tenant container
//! gets a folder of its own, `<data dir>/secrets/<tenant>-<role>/`, mounted
//! read-only at [`crate::domain::spec::SECRETS_MOUNT`].
//!
//! The `secrets` folder itself is mode 0700, so no other user of the host
//! can reach the files. Inside it the files are world-readable (0444, their
//! folder 0555), because the container's user (uid 10001) must read them
//! and the provisioner need not run as root to chown them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::domain::state::TenantRecord;
use crate::domain::{ProviderId, Role};
use crate::error::{Error, Result};
use crate::pki::CertificatePair;

/// The file holding the tenant role's Cassandra password.
pub const CASSANDRA_PASSWORD: &str = "cassandra_password";
/// The file holding the admin panel's session secret.
pub const SESSION_SECRET: &str = "session_secret";
/// The operator's relay password (`[mail] password`), the notifier's only.
pub const SMTP_PASSWORD: &str = "smtp_password";
/// Ingest's gateway certificate chain and key (PEM), when it has one.
pub const GATEWAY_CERT: &str = "gateway.crt";
pub const GATEWAY_KEY: &str = "gateway.key";

fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets")
}

/// The folder of one tenant container's secrets.
pub fn dir(data_dir: &Path, tenant: &ProviderId, role: Role) -> PathBuf {
    root(data_dir).join(format!("{tenant}-{}", role.as_str()))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set the mode of", path, e))
}

/// Writes the secrets `role` needs (replacing what was there), with
/// ingest's gateway certificate if it has one and the notifier's relay
/// password if the config has one, and returns their folder.
pub fn write(
    data_dir: &Path,
    record: &TenantRecord,
    role: Role,
    gateway_certificate: Option<&CertificatePair>,
    smtp_password: Option<&str>,
) -> Result<PathBuf> {
    let root = root(data_dir);
    std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;
    set_mode(&root, 0o700)?;
    let dir = dir(data_dir, &record.id, role);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    set_mode(&dir, 0o755)?;
    let mut files = vec![(CASSANDRA_PASSWORD, record.cassandra_password.as_str())];
    if role == Role::Admin {
        files.push((SESSION_SECRET, record.session_secret.as_str()));
    }
    if let (Role::Ingest, Some(pair)) = (role, gateway_certificate) {
        files.push((GATEWAY_CERT, pair.cert_pem.as_str()));
        files.push((GATEWAY_KEY, pair.key_pem.as_str()));
    }
    match (role, smtp_password) {
        (Role::Notifier, Some(password)) => files.push((SMTP_PASSWORD, password)),
        _ => {
            // a password taken out of the config leaves no file behind
            let stale = dir.join(SMTP_PASSWORD);
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|e| Error::io("remove", &stale, e))?;
            }
        }
    }
    put(&dir, &files)?;
    Ok(dir)
}

/// Writes each file into `dir` (0444; written beside, then renamed: a
/// reader never sees half a secret), then closes the folder (0555).
fn put(dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    for (name, secret) in files {
        crate::pki::write_atomically(&dir.join(name), secret.as_bytes(), 0o444)?;
    }
    set_mode(dir, 0o555)
}

/// Puts a renewed gateway certificate into `tenant`'s ingest folder, if
/// that exists (a running ingest reads it again by itself).
pub fn renew_gateway_certificate(
    data_dir: &Path,
    tenant: &ProviderId,
    pair: &CertificatePair,
) -> Result<()> {
    let dir = dir(data_dir, tenant, Role::Ingest);
    if !dir.exists() {
        return Ok(());
    }
    set_mode(&dir, 0o755)?;
    put(
        &dir,
        &[
            (GATEWAY_CERT, pair.cert_pem.as_str()),
            (GATEWAY_KEY, pair.key_pem.as_str()),
        ],
    )
}

/// Removes every secrets folder of `tenant` (gone already counts as done).
pub fn remove(data_dir: &Path, tenant: &ProviderId) -> Result<()> {
    for role in Role::ALL {
        let dir = dir(data_dir, tenant, role);
        if dir.exists() {
            set_mode(&dir, 0o755)?;
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TenantRecord {
        TenantRecord {
            id: ProviderId::parse("acme").unwrap(),
            desired: crate::domain::Desired::Running,
            cassandra_password: "pw".into(),
            session_secret: "ss".into(),
            schema_version: 1,
            role_ready: true,
            admin_user_created: true,
            gateway_port: Some(6001),
            admin_port: Some(8081),
            created_at: String::new(),
            gateway_tls: Default::default(),
            limits: Default::default(),
            image_tag: None,
            cluster: "default".into(),
        }
    }

    #[test]
    fn each_role_gets_only_its_secrets_in_a_folder_only_the_owner_can_reach() {
        let data = std::env::temp_dir().join(format!("provision-secrets-{}", std::process::id()));
        let ingest = write(&data, &record(), Role::Ingest, None, Some("smtp")).unwrap();
        let admin = write(&data, &record(), Role::Admin, None, None).unwrap();
        let notifier = write(&data, &record(), Role::Notifier, None, Some("smtp")).unwrap();
        assert_eq!(
            std::fs::read_to_string(notifier.join(SMTP_PASSWORD)).unwrap(),
            "smtp"
        );
        assert!(!notifier.join(SESSION_SECRET).exists());
        assert!(
            !ingest.join(SMTP_PASSWORD).exists(),
            "the relay is the notifier's"
        );
        write(&data, &record(), Role::Notifier, None, None).unwrap();
        assert!(
            !notifier.join(SMTP_PASSWORD).exists(),
            "mail off: no password file"
        );
        assert_eq!(
            std::fs::read_to_string(ingest.join(CASSANDRA_PASSWORD)).unwrap(),
            "pw"
        );
        assert!(!ingest.join(SESSION_SECRET).exists());
        assert_eq!(
            std::fs::read_to_string(admin.join(SESSION_SECRET)).unwrap(),
            "ss"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data.join("secrets")), 0o700);
        assert_eq!(mode(&admin.join(SESSION_SECRET)), 0o444);
        // a second write replaces the files in place
        write(&data, &record(), Role::Admin, None, None).unwrap();
        remove(&data, &record().id).unwrap();
        assert!(!admin.exists() && !ingest.exists() && !notifier.exists());
        std::fs::remove_dir_all(&data).unwrap();
    }
}
