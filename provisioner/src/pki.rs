//! The gateway ports' certificates.
//!
//! By default the provisioner runs its own CA: created on first use in
//! `<data dir>/pki/` (`ca.crt`, and `ca.key` with mode 0600, the folder
//! 0700), it issues each tenant's ingest a server certificate for
//! `[ports] public_host`, valid [`VALID_DAYS`] days, kept in
//! `<data dir>/pki/tenants/`. Gateways trust the CA's certificate
//! (`provision gateway ca <provider>`). A certificate with fewer than
//! [`RENEW_DAYS`] days left, for another host, or from another CA is
//! issued again by `start` and `reconcile` (the planner decides; this
//! module observes and issues).
//!
//! With `[gateway_tls] cert_file` and `key_file`, every tenant's ingest
//! serves the operator's certificate instead, and nothing is issued.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::GatewayTlsConfig;
use crate::domain::state::CertificateObserved;
use crate::domain::ProviderId;

/// How long an issued gateway certificate is valid.
pub const VALID_DAYS: i64 = 90;
/// Certificates with fewer days left than this are issued again.
pub const RENEW_DAYS: i64 = 30;
/// How long the CA's own certificate is valid.
const CA_VALID_DAYS: i64 = 3650;

/// What went wrong with a certificate or key.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate {path}: {why}")]
    Certificate { path: PathBuf, why: String },
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

type Result<T> = std::result::Result<T, PkiError>;

/// A certificate chain and its key, as PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The certificates of one data directory and configuration.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
    operator: Option<(PathBuf, PathBuf)>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Writes `text` beside `path`, with `mode`, then renames it into place:
/// a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, text: &[u8], mode: u32) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let fresh = path.with_file_name(format!(".{name}.new"));
    std::fs::write(&fresh, text).map_err(io("write", &fresh))?;
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(mode))
        .map_err(io("set the mode of", &fresh))?;
    std::fs::rename(&fresh, path).map_err(io("write", path))
}

fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("set the mode of", dir))
}

fn to_offset(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).expect("a time within range")
}

/// The first certificate of a PEM text, parsed.
fn first_certificate(pem_text: &str, path: &Path) -> Result<Vec<u8>> {
    let bad = |why: String| PkiError::Certificate {
        path: path.to_owned(),
        why,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| bad(format!("no PEM certificate in it ({e})")))?;
    Ok(pem.contents)
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub not_after: DateTime<Utc>,
    pub hosts: Vec<String>,
    pub issuer: String,
    pub subject: String,
}

/// Reads the facts of the first certificate in `pem_text`.
pub fn facts(pem_text: &str, path: &Path) -> Result<CertificateFacts> {
    let der = first_certificate(pem_text, path)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| PkiError::Certificate {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    let mut hosts = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => hosts.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => hosts.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).expect("4 bytes"))
                            .to_string(),
                    ),
                    16 => hosts.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).expect("16 bytes"))
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertificateFacts {
        not_after: DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
            .unwrap_or_default(),
        hosts,
        issuer: cert.issuer().to_string(),
        subject: cert.subject().to_string(),
    })
}

impl Pki {
    /// The certificates kept in `data_dir`, or the operator's in `config`.
    pub fn new(data_dir: &Path, config: &GatewayTlsConfig) -> Pki {
        Pki {
            dir: data_dir.join("pki"),
            operator: config
                .operator_files()
                .map(|(c, k)| (c.to_owned(), k.to_owned())),
        }
    }

    fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    fn tenant_paths(&self, tenant: &ProviderId) -> (PathBuf, PathBuf) {
        let dir = self.dir.join("tenants");
        (
            dir.join(format!("{tenant}.crt")),
            dir.join(format!("{tenant}.key")),
        )
    }

    /// Whether the operator's certificate is used instead of the CA's.
    pub fn operator_provided(&self) -> bool {
        self.operator.is_some()
    }

    /// The CA's certificate and key, created on first use.
    fn ca(&self) -> Result<(String, KeyPair)> {
        let (cert_path, key_path) = (self.ca_cert_path(), self.ca_key_path());
        if let (Some(cert), Some(key)) = (read(&cert_path)?, read(&key_path)?) {
            let key = KeyPair::from_pem(&key).map_err(|e| PkiError::Certificate {
                path: key_path.clone(),
                why: e.to_string(),
            })?;
            return Ok((cert, key));
        }
        private_dir(&self.dir)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        // A name of its own: a CA made again (a wiped pki folder) is
        // another issuer, and its tenants' certificates are issued again.
        let tag: [u8; 4] = rand::random();
        name.push(
            DnType::CommonName,
            format!("provision gateway CA {}", hex::encode(tag)),
        );
        name.push(DnType::OrganizationName, "provision");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = Utc::now();
        params.not_before = to_offset(now - chrono::TimeDelta::hours(1));
        params.not_after = to_offset(now + chrono::TimeDelta::days(CA_VALID_DAYS));
        let cert = params.self_signed(&key)?.pem();
        write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomically(&cert_path, cert.as_bytes(), 0o644)?;
        tracing::info!(path = %cert_path.display(), "created the gateway CA");
        Ok((cert, key))
    }

    /// The PEM gateways must trust: the CA's certificate, or, with the
    /// operator's own certificate, the last certificate of its chain.
    pub fn trust_pem(&self) -> Result<String> {
        match &self.operator {
            Some((cert, _)) => {
                let chain = read(cert)?.ok_or_else(|| PkiError::Certificate {
                    path: cert.clone(),
                    why: "missing".into(),
                })?;
                let last = chain
                    .rfind("-----BEGIN CERTIFICATE-----")
                    .map_or(chain.as_str(), |i| &chain[i..]);
                Ok(last.to_owned())
            }
            None => Ok(self.ca()?.0),
        }
    }

    /// Issues `tenant` a certificate for `host`, valid [`VALID_DAYS`] from
    /// now, and keeps it; returns it.
    pub fn issue(&self, tenant: &ProviderId, host: &str) -> Result<CertificatePair> {
        let now = Utc::now();
        self.issue_valid(
            tenant,
            host,
            now - chrono::TimeDelta::hours(1),
            now + chrono::TimeDelta::days(VALID_DAYS),
        )
    }

    /// Issues `tenant` a certificate for `host` valid from `not_before` to
    /// `not_after`, and keeps it (tests issue expired ones with it).
    pub fn issue_valid(
        &self,
        tenant: &ProviderId,
        host: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<CertificatePair> {
        let (ca_cert, ca_key) = self.ca()?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert, &ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![host.to_owned()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("{tenant} ingest"));
        params.distinguished_name = name;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_offset(not_before);
        params.not_after = to_offset(not_after);
        let cert = params.signed_by(&key, &issuer)?;
        let pair = CertificatePair {
            // The chain: the tenant's certificate, then the CA's.
            cert_pem: format!("{}{}", cert.pem(), ca_cert),
            key_pem: key.serialize_pem(),
        };
        let (cert_path, key_path) = self.tenant_paths(tenant);
        private_dir(&self.dir)?;
        private_dir(cert_path.parent().expect("in a folder"))?;
        write_atomically(&key_path, pair.key_pem.as_bytes(), 0o600)?;
        write_atomically(&cert_path, pair.cert_pem.as_bytes(), 0o644)?;
        Ok(pair)
    }

    /// The certificate `tenant`'s ingest serves: the operator's, or the
    /// one issued to it (none yet: `None`).
    pub fn tenant_pair(&self, tenant: &ProviderId) -> Result<Option<CertificatePair>> {
        let (cert, key) = match &self.operator {
            Some((c, k)) => (c.clone(), k.clone()),
            None => self.tenant_paths(tenant),
        };
        match (read(&cert)?, read(&key)?) {
            (Some(cert_pem), Some(key_pem)) => Ok(Some(CertificatePair { cert_pem, key_pem })),
            _ if self.operator.is_some() => Err(PkiError::Certificate {
                path: cert,
                why: "[gateway_tls] names it, and it (or its key) cannot be found".into(),
            }),
            _ => Ok(None),
        }
    }

    /// How `tenant`'s certificate stands, for the planner.
    pub fn observe(&self, tenant: &ProviderId, host: &str) -> Result<CertificateObserved> {
        if self.operator.is_some() {
            return Ok(CertificateObserved::Operator);
        }
        let (cert_path, _) = self.tenant_paths(tenant);
        let Some(pair) = self.tenant_pair(tenant)? else {
            return Ok(CertificateObserved::Missing);
        };
        let Ok(cert) = facts(&pair.cert_pem, &cert_path) else {
            // Unreadable counts as missing: it is issued again.
            return Ok(CertificateObserved::Missing);
        };
        let by_current_ca = match read(&self.ca_cert_path())? {
            Some(ca) => facts(&ca, &self.ca_cert_path())?.subject == cert.issuer,
            None => false,
        };
        Ok(CertificateObserved::Issued {
            days_left: (cert.not_after - Utc::now()).num_days(),
            host_matches: cert.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)),
            by_current_ca,
        })
    }

    /// Forgets `tenant`'s certificate (gone already counts as done).
    pub fn remove(&self, tenant: &ProviderId) -> Result<()> {
        let (cert, key) = self.tenant_paths(tenant);
        for path in [cert, key] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(dir: &Path) -> Pki {
        Pki {
            dir: dir.join("pki"),
            operator: None,
        }
    }

    fn id() -> ProviderId {
        ProviderId::parse("acme").unwrap()
    }

    #[test]
    fn a_tenant_certificate_is_observed_as_issued() {
        let tmp = tempdir();
        let pki = pki(&tmp);
        assert_eq!(
            pki.observe(&id(), "gw.example").unwrap(),
            CertificateObserved::Missing
        );
        let pair = pki.issue(&id(), "gw.example").unwrap();
        assert!(
            pair.cert_pem.matches("BEGIN CERTIFICATE").count() == 2,
            "the chain has the CA"
        );
        match pki.observe(&id(), "gw.example").unwrap() {
            CertificateObserved::Issued {
                days_left,
                host_matches,
                by_current_ca,
            } => {
                assert!(
                    (VALID_DAYS - 1..=VALID_DAYS).contains(&days_left),
                    "{days_left}"
                );
                assert!(host_matches);
                assert!(by_current_ca);
            }
            other => panic!("{other:?}"),
        }
        // Another host, or the CA made again, call for a new one.
        assert!(matches!(
            pki.observe(&id(), "other.example").unwrap(),
            CertificateObserved::Issued {
                host_matches: false,
                ..
            }
        ));
        std::fs::remove_file(tmp.join("pki/ca.crt")).unwrap();
        std::fs::remove_file(tmp.join("pki/ca.key")).unwrap();
        pki.trust_pem().unwrap();
        assert!(matches!(
            pki.observe(&id(), "gw.example").unwrap(),
            CertificateObserved::Issued {
                by_current_ca: false,
                ..
            }
        ));
    }

    #[test]
    fn the_ca_key_is_private() {
        let tmp = tempdir();
        pki(&tmp).trust_pem().unwrap();
        let mode = |p: &str| std::fs::metadata(tmp.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("pki/ca.key"), 0o600);
        assert_eq!(mode("pki"), 0o700);
    }

    #[test]
    fn an_expired_certificate_has_negative_days_left() {
        let tmp = tempdir();
        let pki = pki(&tmp);
        let now = Utc::now();
        pki.issue_valid(
            &id(),
            "localhost",
            now - chrono::TimeDelta::days(100),
            now - chrono::TimeDelta::days(10),
        )
        .unwrap();
        assert!(matches!(
            pki.observe(&id(), "localhost").unwrap(),
            CertificateObserved::Issued { days_left, .. } if days_left <= -9
        ));
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("provision-pki-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
