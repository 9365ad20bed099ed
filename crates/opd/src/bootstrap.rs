//! First-start setup of a data directory and the embedded default site. Every step is
//! idempotent: a crash half-way through is finished by the next start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use op_store::{Repo, RepoError};
use op_types::specs::{
    CloudletSpec, FlavorSpec, GeoPoint, PlatformType, RegionSpec, Resources, Role, ServiceArea, UserSpec,
    ZoneSpec,
};
use op_types::{Kind, Name, Object, State};
use rand::RngCore;

/// What a prepared data directory holds.
pub struct Boot {
    /// Token signing secret.
    pub jwt_secret: Vec<u8>,
    /// This platform's id (labels its containers).
    pub platform_id: String,
    /// Where the admin credential is.
    pub admin_credential_path: PathBuf,
    /// The admin password.
    pub admin_password: String,
    /// What the passwords of instances' platform-service roles are derived from
    /// (`services.key`, mode 0600): a restart derives the same ones.
    pub service_secret: Vec<u8>,
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads `path`, or creates it (mode 0600) with `make()`.
fn secret_file(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(s) = fs::read_to_string(path) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let value = make();
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(value.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(value)
}

/// Creates the data directory (0700) and its secrets if missing.
pub fn prepare_dir(dir: &Path) -> anyhow::Result<Boot> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let jwt = secret_file(&dir.join("jwt.key"), || random_hex(32))?;
    let platform_id = secret_file(&dir.join("platform-id"), || random_hex(8))?;
    let cred = dir.join("admin-credential");
    let password = secret_file(&cred, || format!("admin:{}", random_hex(16)))?;
    let admin_password = password.split_once(':').map(|(_, p)| p.to_string()).context("admin-credential is not user:password")?;
    let service_secret = secret_file(&dir.join("services.key"), || random_hex(32))?;
    Ok(Boot { jwt_secret: jwt.into_bytes(), platform_id, admin_credential_path: cred, admin_password, service_secret: service_secret.into_bytes() })
}

/// The EWBI's TLS settings: the given certificate and key, else a certificate made on first
/// start for `localhost` and `127.0.0.1`, signed by a CA of this platform's own
/// (`ewbi-ca.pem`, the file to give partners; its key stays in `ewbi-ca.key`, mode 0600).
pub fn ewbi_tls(dir: &Path, cert: &Option<PathBuf>, key: &Option<PathBuf>, client_ca: Option<PathBuf>, require: bool) -> anyhow::Result<op_api::ewbi::tls::TlsSettings> {
    let (cert, key) = match (cert, key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let (c, k) = (dir.join("ewbi-cert.pem"), dir.join("ewbi-key.pem"));
            if !c.exists() || !k.exists() {
                let ca_key = rcgen::KeyPair::generate()?;
                let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
                ca.distinguished_name.push(rcgen::DnType::CommonName, "Operator Platform EWBI CA");
                ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
                let ca_cert = ca.self_signed(&ca_key)?;
                let leaf_key = rcgen::KeyPair::generate()?;
                let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
                leaf.distinguished_name.push(rcgen::DnType::CommonName, "Operator Platform EWBI");
                let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
                fs::write(dir.join("ewbi-ca.pem"), ca_cert.pem())?;
                secret_file(&dir.join("ewbi-ca.key"), || ca_key.serialize_pem())?;
                secret_file(&k, || leaf_key.serialize_pem())?;
                fs::write(&c, leaf_cert.pem())?;
            }
            (c, k)
        }
    };
    Ok(op_api::ewbi::tls::TlsSettings { cert_pem_path: cert, key_pem_path: key, client_ca_pem_path: client_ca, require_client_cert: require })
}

/// The platform's token signing key (ES256, `token-signing.pem`, mode 0600, created on first
/// start), naming `issuer` in every token.
pub fn token_keys(dir: &Path, issuer: &str) -> anyhow::Result<op_api::auth::TokenKeys> {
    let path = dir.join("token-signing.pem");
    let mut failed = None;
    let pem = secret_file(&path, || op_api::auth::TokenKeys::generate_pem().unwrap_or_else(|e| {
        failed = Some(e);
        String::new()
    }))?;
    if let Some(e) = failed {
        anyhow::bail!("cannot generate the token signing key: {e}");
    }
    op_api::auth::TokenKeys::from_pem(&pem, issuer).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The UNI session signing key, created (mode 0600) on first start.
pub fn session_signer(dir: &Path) -> anyhow::Result<op_uni::token::SessionSigner> {
    let path = dir.join("uni-signing.pem");
    let mut generated = None;
    let pem = secret_file(&path, || match op_uni::token::SessionSigner::generate() {
        Ok((_, pem)) => pem,
        Err(e) => {
            generated = Some(e);
            String::new()
        }
    })?;
    if let Some(e) = generated {
        anyhow::bail!("cannot generate the UNI signing key: {e}");
    }
    op_uni::token::SessionSigner::from_private_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn create_once<S: serde::Serialize>(repo: &Repo, mut obj: Object<S>) -> anyhow::Result<()> {
    match repo.create(&mut obj).await {
        Ok(()) | Err(RepoError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn name(s: &str) -> anyhow::Result<Name> {
    Name::new(s).map_err(|e| anyhow::anyhow!("bad built-in name {s}: {e}"))
}

/// Ensures the `admin` operator user exists with the credential's password.
pub async fn ensure_admin(repo: &Repo, boot: &Boot) -> anyhow::Result<()> {
    let admin = name("admin")?;
    if repo.get_by_name::<UserSpec, ()>(Kind::User, None, &admin).await?.is_some() {
        return Ok(());
    }
    let hash = op_api::auth::hash_password(&boot.admin_password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut u = Object::new(Kind::User, None, admin, UserSpec { organization: None, role: Role::OperatorAdmin, password_hash: hash, memberships: Vec::new() });
    u.status.state = State::Ready;
    create_once(repo, u).await
}

fn ready<S>(mut o: Object<S>) -> Object<S> {
    o.status.state = State::Ready;
    o
}

/// Creates the embedded default site: region `default`, zone `local`, flavors
/// `small`/`medium`/`large`, and cloudlet `local-docker` on `docker_endpoint`.
pub async fn ensure_default_site(repo: &Repo, docker_endpoint: &str) -> anyhow::Result<()> {
    let here = GeoPoint { latitude: 48.8566, longitude: 2.3522 };
    create_once(repo, ready(Object::new(Kind::Region, None, name("default")?, RegionSpec { description: Some("embedded default region".into()), ..Default::default() }))).await?;
    let zone = ZoneSpec {
        region: name("default")?,
        location: here,
        service_area: ServiceArea { cells: vec!["cell-0001".into()], polygon: vec![] },
        dnai: None,
        federated: None,
    };
    create_once(repo, ready(Object::new(Kind::Zone, None, name("local")?, zone))).await?;
    let flavors = [("small", 1, 256), ("medium", 2, 1024), ("large", 4, 4096)];
    for (n, vcpus, mem) in flavors {
        let f: FlavorSpec = Resources { vcpus, memory_mb: mem, disk_gb: 10, gpus: 0 };
        create_once(repo, ready(Object::new(Kind::Flavor, None, name(n)?, f))).await?;
    }
    let cl = CloudletSpec {
        zone: name("local")?,
        location: here,
        platform_type: PlatformType::Docker,
        driver_endpoint: docker_endpoint.to_string(),
        public_host: "127.0.0.1".into(),
        capacity: Resources { vcpus: 64, memory_mb: 65536, disk_gb: 500, gpus: 0 },
        flavors: vec![name("small")?, name("medium")?, name("large")?],
        maintenance: false,
        level: Default::default(),
        security_group: None,
        privacy_policy: None,
    };
    create_once(repo, Object::new(Kind::Cloudlet, None, name("local-docker")?, cl)).await?;
    Ok(())
}
