//! A throwaway PKI for end-to-end tests: one CA, then server and client certificates it signs,
//! written as PEM files. The federation interface (EWBI) is HTTPS-only and may require mutual
//! TLS, so tests that federate two platforms need real certificates on disk (for `opd`'s
//! settings) and in memory (for `reqwest`). Keys are ECDSA P-256 (rcgen's default); nothing
//! here is for production.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A test certificate authority whose files live in `dir`. Keeps the CA key in memory so it can
/// keep signing certificates for the test's servers and clients.
pub struct TestPki {
    /// Where every PEM file of this PKI is written.
    pub dir: PathBuf,
    /// The CA certificate (PEM): the trust root to give clients, or the client CA of a server.
    pub ca_pem: PathBuf,
    ca_cert: Certificate,
    ca_key: KeyPair,
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

fn file_stem(name: &str) -> Result<&str> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) && !name.starts_with('.'),
        "certificate name {name:?} must be a plain file name ([A-Za-z0-9._-])"
    );
    Ok(name)
}

impl TestPki {
    /// A new CA (`CN=op test CA`), its certificate written to `dir/ca.pem` (and its key to
    /// `dir/ca.key`, for tools that want to sign more). Creates `dir` if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<TestPki> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        params.distinguished_name.push(DnType::CommonName, "op test CA");
        params.distinguished_name.push(DnType::OrganizationName, "Operator Platform tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = params.self_signed(&ca_key).context("self-signing the CA")?;
        let ca_pem = dir.join("ca.pem");
        write(&ca_pem, &ca_cert.pem(), false)?;
        write(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?;
        Ok(TestPki { dir, ca_pem, ca_cert, ca_key })
    }

    fn leaf(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Result<(Certificate, KeyPair)> {
        let key = KeyPair::generate().with_context(|| format!("generating the key of {name}"))?;
        let sans: Vec<String> = sans.iter().map(ToString::to_string).collect();
        let mut params = CertificateParams::new(sans).with_context(|| format!("subject alternative names of {name}"))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).with_context(|| format!("signing {name}"))?;
        Ok((cert, key))
    }

    /// A server certificate for `name` valid for `sans` (DNS names, or IP addresses such as
    /// `127.0.0.1`, which become IP SANs: pass `&["localhost", "127.0.0.1"]` for a local
    /// listener). Writes `dir/<name>.pem` and `dir/<name>.key`; returns (certificate, key) paths.
    pub fn server(&self, name: &str, sans: &[&str]) -> Result<(PathBuf, PathBuf)> {
        let stem = file_stem(name)?;
        anyhow::ensure!(!sans.is_empty(), "a server certificate needs at least one subject alternative name");
        let (cert, key) = self.leaf(name, sans, ExtendedKeyUsagePurpose::ServerAuth)?;
        let cert_path = self.dir.join(format!("{stem}.pem"));
        let key_path = self.dir.join(format!("{stem}.key"));
        write(&cert_path, &cert.pem(), false)?;
        write(&key_path, &key.serialize_pem(), true)?;
        Ok((cert_path, key_path))
    }

    /// A client certificate (`CN=<name>`, client-auth usage), e.g. a partner operator's for
    /// mutual TLS. Writes `dir/<name>.pem`, `dir/<name>.key` and `dir/<name>.identity.pem`
    /// (certificate then key, what `reqwest::Identity::from_pem` reads); returns the three paths.
    pub fn client(&self, name: &str) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let stem = file_stem(name)?;
        let (cert, key) = self.leaf(name, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let cert_path = self.dir.join(format!("{stem}.pem"));
        let key_path = self.dir.join(format!("{stem}.key"));
        let identity_path = self.dir.join(format!("{stem}.identity.pem"));
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write(&cert_path, &cert_pem, false)?;
        write(&key_path, &key_pem, true)?;
        write(&identity_path, &format!("{cert_pem}{key_pem}"), true)?;
        Ok((cert_path, key_path, identity_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_leaves_it_signs() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = TestPki::new(tmp.path().join("pki")).unwrap();
        let ca = std::fs::read_to_string(&pki.ca_pem).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let (cert, key) = pki.server("ewbi", &["localhost", "127.0.0.1"]).unwrap();
        assert!(std::fs::read_to_string(cert).unwrap().contains("BEGIN CERTIFICATE"));
        assert!(std::fs::read_to_string(key).unwrap().contains("PRIVATE KEY"));
        let (_, _, identity) = pki.client("partner-a").unwrap();
        let id = std::fs::read_to_string(&identity).unwrap();
        assert!(id.contains("BEGIN CERTIFICATE") && id.contains("PRIVATE KEY"));
        reqwest::Identity::from_pem(id.as_bytes()).unwrap();
        reqwest::Certificate::from_pem(ca.as_bytes()).unwrap();
        assert!(pki.server("../evil", &["localhost"]).is_err());
        assert!(pki.server("nosans", &[]).is_err());
    }
}
