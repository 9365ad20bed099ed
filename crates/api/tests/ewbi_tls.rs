//! The EWBI's HTTPS listener ([`op_api::ewbi::tls`]) against a real TLS client: HTTPS works,
//! plain HTTP does not, mutual TLS admits only certificates of the configured CA and hands the
//! handler the partner's certificate, and junk connections do not take the server down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use op_api::ewbi::tls::{serve, server_config, PeerCertificates, TlsError, TlsSettings};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A CA that signs server and client certificates into a temporary directory.
struct Ca {
    dir: PathBuf,
    cert: Certificate,
    key: KeyPair,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { dir: dir.to_path_buf(), cert, key, pem }
    }

    fn leaf(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        (params.signed_by(&key, &self.cert, &self.key).unwrap(), key)
    }

    /// (certificate path, key path) of a server certificate for 127.0.0.1 and localhost.
    fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf(name, &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
        let (c, k) = (self.dir.join(format!("{name}.crt")), self.dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A reqwest identity (certificate + key PEM) and the hex SHA-256 of the certificate's DER.
    fn client(&self, name: &str) -> (reqwest::Identity, String) {
        let (cert, key) = self.leaf(name, &[], ExtendedKeyUsagePurpose::ClientAuth);
        let identity = reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes()).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
        (identity, digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }
}

fn router() -> Router {
    Router::new().route("/hello", get(|| async { "hello" })).route(
        "/peer",
        get(|Extension(p): Extension<PeerCertificates>| async move { p.leaf_sha256().unwrap_or_else(|| "none".into()) }),
    )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn start(settings: &TlsSettings) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(settings).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, router(), async move {
        let _ = rx.await;
    }));
    Server { addr, stop: Some(tx), task }
}

fn client(ca: &Ca, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca.pem).unwrap()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .https_only(true)
        .timeout(Duration::from_secs(10));
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().unwrap()
}

async fn get_text(c: &reqwest::Client, addr: SocketAddr, path: &str) -> reqwest::Result<(u16, String)> {
    let r = c.get(format!("https://{addr}{path}")).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

fn settings(server: (PathBuf, PathBuf), client_ca: Option<&Ca>, required: bool) -> TlsSettings {
    TlsSettings {
        cert_pem_path: server.0,
        key_pem_path: server.1,
        client_ca_pem_path: client_ca.map(|c| c.pem.clone()),
        require_client_cert: required,
    }
}

#[tokio::test]
async fn https_works_and_plain_http_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "server-ca");
    let srv = start(&settings(ca.server("ewbi"), None, false)).await;
    let c = client(&ca, None);
    assert_eq!(get_text(&c, srv.addr, "/hello").await.unwrap(), (200, "hello".to_string()));
    // No client certificate asked for: the handler sees an empty chain.
    assert_eq!(get_text(&c, srv.addr, "/peer").await.unwrap(), (200, "none".to_string()));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let r = plain.get(format!("http://{}/hello", srv.addr)).send().await;
    assert!(r.is_err() || !r.unwrap().status().is_success(), "plain HTTP was served");
    // A client that does not trust our CA refuses the server.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(untrusting.get(format!("https://{}/hello", srv.addr)).send().await.is_err());
    // And the server still serves.
    assert_eq!(get_text(&c, srv.addr, "/hello").await.unwrap().0, 200);
}

#[tokio::test]
async fn required_mutual_tls_admits_only_the_partner_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let server_ca = Ca::new(tmp.path(), "server-ca");
    let partner_ca = Ca::new(tmp.path(), "partner-ca");
    let rogue_ca = Ca::new(tmp.path(), "rogue-ca");
    let srv = start(&settings(server_ca.server("ewbi"), Some(&partner_ca), true)).await;

    assert!(get_text(&client(&server_ca, None), srv.addr, "/hello").await.is_err(), "no client certificate was admitted");
    let (rogue, _) = rogue_ca.client("partner-a");
    assert!(get_text(&client(&server_ca, Some(rogue)), srv.addr, "/hello").await.is_err(), "another CA's certificate was admitted");
    // A server certificate of the right CA is not a client certificate either.
    let (cert, key) = partner_ca.leaf("partner-a", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let wrong_usage = reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes()).unwrap();
    assert!(get_text(&client(&server_ca, Some(wrong_usage)), srv.addr, "/hello").await.is_err(), "server-auth certificate admitted");

    let (good, fingerprint) = partner_ca.client("partner-a");
    let c = client(&server_ca, Some(good));
    assert_eq!(get_text(&c, srv.addr, "/hello").await.unwrap(), (200, "hello".to_string()));
    assert_eq!(get_text(&c, srv.addr, "/peer").await.unwrap(), (200, fingerprint));
}

#[tokio::test]
async fn optional_mutual_tls_verifies_a_certificate_when_given() {
    let tmp = tempfile::tempdir().unwrap();
    let server_ca = Ca::new(tmp.path(), "server-ca");
    let partner_ca = Ca::new(tmp.path(), "partner-ca");
    let rogue_ca = Ca::new(tmp.path(), "rogue-ca");
    let srv = start(&settings(server_ca.server("ewbi"), Some(&partner_ca), false)).await;

    assert_eq!(get_text(&client(&server_ca, None), srv.addr, "/peer").await.unwrap(), (200, "none".to_string()));
    let (good, fingerprint) = partner_ca.client("partner-a");
    assert_eq!(get_text(&client(&server_ca, Some(good)), srv.addr, "/peer").await.unwrap(), (200, fingerprint));
    let (rogue, _) = rogue_ca.client("partner-a");
    assert!(get_text(&client(&server_ca, Some(rogue)), srv.addr, "/peer").await.is_err(), "an unverifiable certificate was admitted");
}

#[tokio::test]
async fn junk_and_idle_connections_do_not_stop_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "server-ca");
    let mut srv = start(&settings(ca.server("ewbi"), None, false)).await;

    // Junk, then close.
    let mut junk = TcpStream::connect(srv.addr).await.unwrap();
    junk.write_all(b"\x16\x03\x01\x00\x05garbage that is not a ClientHello\r\n\r\n").await.unwrap();
    junk.shutdown().await.unwrap();
    drop(junk);
    // Connect and close at once.
    drop(TcpStream::connect(srv.addr).await.unwrap());
    // Connect and stay silent while others are served.
    let _idle = TcpStream::connect(srv.addr).await.unwrap();

    let c = client(&ca, None);
    assert_eq!(get_text(&c, srv.addr, "/hello").await.unwrap(), (200, "hello".to_string()));

    // Shutdown: serve returns, the port stops answering.
    drop(c);
    srv.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut srv.task).await.expect("serve did not return after shutdown").unwrap();
    let c = client(&ca, None);
    assert!(get_text(&c, srv.addr, "/hello").await.is_err());
}

#[test]
fn configuration_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "server-ca");
    let (cert, key) = ca.server("ewbi");

    let missing = tmp.path().join("missing.pem");
    let e = server_config(&settings((missing.clone(), key.clone()), None, false)).unwrap_err();
    assert!(matches!(&e, TlsError::Read { path, .. } if *path == missing), "{e:?}");
    assert!(e.to_string().contains("missing.pem"), "{e}");

    // A key file holding only a certificate.
    let e = server_config(&settings((cert.clone(), cert.clone()), None, false)).unwrap_err();
    assert!(matches!(&e, TlsError::NoPrivateKey { path } if *path == cert), "{e:?}");

    // A certificate file holding only a key.
    let e = server_config(&settings((key.clone(), key.clone()), None, false)).unwrap_err();
    assert!(matches!(&e, TlsError::NoCertificate { path } if *path == key), "{e:?}");

    // A key that is not the certificate's.
    let (_, other_key) = ca.server("other");
    let e = server_config(&settings((cert.clone(), other_key), None, false)).unwrap_err();
    assert!(matches!(&e, TlsError::Config { .. }), "{e:?}");

    // Required client certificates without a CA to check them against.
    let e = server_config(&settings((cert.clone(), key.clone()), None, true)).unwrap_err();
    assert!(matches!(e, TlsError::ClientCaMissing), "{e:?}");

    // A client CA file that holds no certificate.
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let mut s = settings((cert, key), None, true);
    s.client_ca_pem_path = Some(empty.clone());
    let e = server_config(&s).unwrap_err();
    assert!(matches!(&e, TlsError::NoCertificate { path } if *path == empty), "{e:?}");
}
