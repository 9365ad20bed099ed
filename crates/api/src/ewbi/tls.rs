//! HTTPS (and optionally mutual TLS) for the federation interface (EWBI).
//!
//! Partner operators reach this platform over the public network, so the EWBI is served over
//! TLS only, and a partner may be required to present a client certificate issued by a CA the
//! operator trusts. `axum::serve` speaks plain TCP, hence this small accept loop over rustls:
//! it survives bad handshakes, serves each connection on its own task, and hands every request
//! the client's verified certificate chain ([`PeerCertificates`]) so a handler can pin a
//! partner's certificate.
//!
//! The `ring` crypto provider is passed explicitly, so nothing process-wide has to be installed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service;

/// How long a client may take to complete the TLS handshake before its connection is dropped,
/// so that idle or slow sockets cannot pile up tasks and file descriptors.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`serve`] waits for in-flight requests to finish once shutdown was asked for,
/// so a stuck partner cannot hold the platform's shutdown forever.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where the EWBI's TLS material lives and whether partners must authenticate with a
/// certificate. Paths rather than bytes, so errors can name the file an operator must fix.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert_pem_path: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem_path: PathBuf,
    /// PEM file with the CA certificates that issue partners' client certificates. When set,
    /// client certificates are asked for and verified against these CAs.
    pub client_ca_pem_path: Option<PathBuf>,
    /// Whether a connection without a valid client certificate is refused during the handshake
    /// (mutual TLS). Needs `client_ca_pem_path`. When false, a client certificate is optional but
    /// still verified if presented.
    pub require_client_cert: bool,
}

/// Why the EWBI's TLS configuration could not be built. Every variant names the file involved,
/// because the fix is nearly always in that file or its path.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("{} contains no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no private key block.
    #[error("{} contains no PEM private key", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate could not be used as a trust anchor.
    #[error("{}: certificate is not a usable CA: {source}", path.display())]
    BadClientCa {
        /// The CA file.
        path: PathBuf,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The client verifier could not be built from the CA file (e.g. it holds no usable anchor).
    #[error("{}: cannot verify client certificates with these CAs: {source}", path.display())]
    ClientVerifier {
        /// The CA file.
        path: PathBuf,
        /// Why rustls refused it.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// `require_client_cert` was set without a CA to verify client certificates against.
    #[error("require_client_cert is set but no client_ca_pem_path is configured")]
    ClientCaMissing,
    /// The certificate and key were read but rustls refused them together (key does not match
    /// the certificate, unsupported key type...).
    #[error("{} / {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why rustls refused them.
        #[source]
        source: rustls::Error,
    },
}

/// The certificate chain a client presented and rustls verified (leaf first); empty when the
/// client presented none (only possible when client certificates are optional). Inserted into
/// every request served by [`serve`], so a handler can take `Extension<PeerCertificates>` and
/// match the partner it authenticated with OAuth against the certificate it connected with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificates(pub Vec<CertificateDer<'static>>);

impl PeerCertificates {
    /// Lowercase hex SHA-256 of the leaf certificate's DER, the usual certificate-pinning
    /// fingerprint (`openssl x509 -fingerprint -sha256`, without colons); `None` without a
    /// client certificate.
    pub fn leaf_sha256(&self) -> Option<String> {
        let leaf = self.0.first()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
        Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { path: path.to_path_buf(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey { path: path.to_path_buf() },
        source => TlsError::Pem { path: path.to_path_buf(), source },
    })
}

/// Builds the EWBI's rustls server configuration from PEM files: server certificate and key,
/// and optional (or required) client-certificate verification against a partner CA bundle.
/// Uses the `ring` provider explicitly and advertises only HTTP/1.1 over ALPN (what [`serve`]
/// speaks). Call once at startup: a bad file fails here, with its name, not at the first partner.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_chain = certificates(&settings.cert_pem_path)?;
    let key = private_key(&settings.key_pem_path)?;
    let verifier = match (&settings.client_ca_pem_path, settings.require_client_cert) {
        (None, true) => return Err(TlsError::ClientCaMissing),
        (None, false) => WebPkiClientVerifier::no_client_auth(),
        (Some(ca_path), required) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_path)? {
                roots.add(ca).map_err(|source| TlsError::BadClientCa { path: ca_path.clone(), source })?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if required { builder } else { builder.allow_unauthenticated() };
            builder.build().map_err(|source| TlsError::ClientVerifier { path: ca_path.clone(), source })?
        }
    };
    let config_error = |source| TlsError::Config {
        cert: settings.cert_pem_path.clone(),
        key: settings.key_pem_path.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert_chain, key)
        .map_err(config_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then stops accepting and
/// gives in-flight requests up to [`SHUTDOWN_GRACE`] to finish.
///
/// Each connection gets its own task; a failed or slow handshake (plain HTTP, port scanners,
/// a partner with the wrong certificate) is logged at debug level and only drops that
/// connection. Every request carries the connection's [`PeerCertificates`] and its
/// `ConnectInfo<SocketAddr>` as extensions.
pub async fn serve(listener: TcpListener, config: Arc<ServerConfig>, router: Router, shutdown: impl Future) {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    // Tells connections still in their handshake to give up at shutdown (the graceful watcher
    // only takes over once a connection serves HTTP).
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Typically EMFILE or a connection reset before accept: back off briefly rather
                // than spin, and keep serving.
                tracing::warn!(error = %e, "EWBI: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reap finished connection tasks so the set does not grow with the server's uptime.
        while connections.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => handshake,
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "EWBI: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "EWBI: TLS handshake timed out");
                    return;
                }
            };
            let peer = PeerCertificates(tls.get_ref().1.peer_certificates().map(<[_]>::to_vec).unwrap_or_default());
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(peer.clone());
                request.extensions_mut().insert(ConnectInfo(remote));
                // A Router is always ready, so calling it without `poll_ready` is fine.
                router.clone().call(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%remote, error = %e, "EWBI: connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("EWBI: connections still open after the shutdown grace period; dropping them");
    }
    connections.abort_all();
}

