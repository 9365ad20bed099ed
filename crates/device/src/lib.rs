//! The device-side UNI client: what a device app links to learn its edge.
//!
//! 1. [`Resolver`] turns the operator's MCC/MNC into the UNI address (the documented well-known
//!    name, or an override for labs and private networks).
//! 2. [`DeviceClient::register`] authenticates and gets the best edge, alternatives, the service
//!    area and a session token.
//! 3. [`DeviceClient::probe`] measures the offers; [`DeviceClient::confirm`] records the choice.
//! 4. [`DeviceClient::watch`] follows the changes the platform pushes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use op_types::uni::{well_known_host, Confirm, Confirmed, EdgeOffer, RegisterRequest, Registration, UniEvent, UniInfo};
use op_types::Uid;

/// How long one probe request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes downloaded to measure throughput: small enough for a phone's data plan.
pub const PROBE_DOWNLOAD: usize = 256 << 10;

/// What a device measured of an offer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    /// Best round-trip time.
    pub rtt: Duration,
    /// Downlink throughput, Mbit/s (when the edge has a probe).
    pub download_mbps: Option<f64>,
}

/// What can go wrong on the device side.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The UNI refused the call (CAMARA error body).
    #[error("{code} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The UNI or an edge could not be reached.
    #[error("cannot reach {0}")]
    Unreachable(String),
    /// The answer was not understood.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The well-known address belongs to another operator.
    #[error("the UNI at {url} serves MCC {mcc} MNC {mnc}, not the requested network")]
    WrongNetwork {
        /// Where.
        url: String,
        /// Its MCC.
        mcc: String,
        /// Its MNC.
        mnc: String,
    },
}

/// Maps well-known UNI host names to base URLs. Without an override the URL is
/// `https://<well-known host>`; overrides come from `OP_UNI_RESOLVE` as
/// `host=url[,host=url...]`.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    overrides: HashMap<String, String>,
}

impl Resolver {
    /// A resolver with the overrides in `OP_UNI_RESOLVE`.
    pub fn from_env() -> Self {
        Self::parse(&std::env::var("OP_UNI_RESOLVE").unwrap_or_default())
    }

    /// A resolver from `host=url[,host=url...]`.
    pub fn parse(spec: &str) -> Self {
        let overrides = spec
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(h, u)| (h.trim().to_ascii_lowercase(), u.trim().trim_end_matches('/').to_string()))
            .collect();
        Self { overrides }
    }

    /// The UNI base URL of the network `mcc`/`mnc`.
    pub fn resolve(&self, mcc: &str, mnc: &str) -> String {
        let host = well_known_host(mcc, mnc);
        self.overrides.get(&host).cloned().unwrap_or_else(|| format!("https://{host}"))
    }
}

/// A device's connection to its operator's UNI.
#[derive(Clone)]
pub struct DeviceClient {
    base: String,
    http: reqwest::Client,
}

async fn decode<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, DeviceError> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| DeviceError::Unreachable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|e| DeviceError::Decode(format!("{e}: {text}")));
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Err(DeviceError::Api {
        status: status.as_u16(),
        code: v["code"].as_str().unwrap_or("ERROR").to_string(),
        message: v["message"].as_str().map_or(text.clone(), str::to_string),
    })
}

impl DeviceClient {
    /// A client of the UNI at `base`.
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    /// Finds the UNI of network `mcc`/`mnc` and checks that it serves that network.
    pub async fn discover(mcc: &str, mnc: &str, resolver: &Resolver) -> Result<Self, DeviceError> {
        let client = Self::new(&resolver.resolve(mcc, mnc));
        let url = format!("{}/.well-known/op-uni", client.base);
        let resp = client.http.get(&url).send().await.map_err(|e| DeviceError::Unreachable(format!("{url}: {e}")))?;
        let info: UniInfo = decode(resp).await?;
        let same = |a: &str, b: &str| a.trim_start_matches('0') == b.trim_start_matches('0');
        if !same(&info.mcc, mcc) || !same(&info.mnc, mnc) {
            return Err(DeviceError::WrongNetwork { url, mcc: info.mcc, mnc: info.mnc });
        }
        Ok(client)
    }

    /// The UNI's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Registers the device for an app: the best edge, alternatives and a session token.
    pub async fn register(&self, req: &RegisterRequest) -> Result<Registration, DeviceError> {
        let url = format!("{}/uni/v1/sessions", self.base);
        let resp = self.http.post(&url).json(req).send().await.map_err(|e| DeviceError::Unreachable(format!("{url}: {e}")))?;
        decode(resp).await
    }

    /// Measures an offer at its edge's connectivity probe: round-trip time (best of three
    /// `GET /echo`) and downlink throughput (one `GET /download` of [`PROBE_DOWNLOAD`] bytes),
    /// without load on the app. An offer without a probe is measured by TCP connects to the
    /// app's port (round-trip time only).
    pub async fn probe(&self, offer: &EdgeOffer) -> Result<Probe, DeviceError> {
        let Some(base) = offer.probe_url.as_deref() else {
            let mut best: Option<Duration> = None;
            for _ in 0..3 {
                let t = Instant::now();
                let conn = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((offer.host.as_str(), offer.port))).await;
                if let Ok(Ok(_)) = conn {
                    best = Some(best.map_or(t.elapsed(), |b| b.min(t.elapsed())));
                }
            }
            let rtt = best.ok_or_else(|| DeviceError::Unreachable(format!("{}:{}", offer.host, offer.port)))?;
            return Ok(Probe { rtt, download_mbps: None });
        };
        let get = |url: String| async move {
            let r = self.http.get(&url).timeout(PROBE_TIMEOUT).send().await.map_err(|e| DeviceError::Unreachable(format!("{url}: {e}")))?;
            if !r.status().is_success() {
                return Err(DeviceError::Decode(format!("{url}: {}", r.status())));
            }
            r.bytes().await.map_err(|e| DeviceError::Unreachable(format!("{url}: {e}")))
        };
        let mut rtt = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            get(format!("{base}/echo")).await?;
            rtt = rtt.min(t.elapsed());
        }
        let t = Instant::now();
        let got = get(format!("{base}/download?bytes={PROBE_DOWNLOAD}")).await?;
        let secs = t.elapsed().as_secs_f64().max(1e-6);
        Ok(Probe { rtt, download_mbps: Some(got.len() as f64 * 8.0 / secs / 1e6) })
    }

    /// Confirms the instance the device will use; returns the token bound to it.
    pub async fn confirm(&self, session_id: &str, token: &str, instance: Uid, measured: Option<Duration>) -> Result<Confirmed, DeviceError> {
        let url = format!("{}/uni/v1/sessions/{session_id}/confirm", self.base);
        let body = Confirm { app_instance_id: instance, measured_latency_ms: measured.map(|d| d.as_secs_f64() * 1000.0) };
        let resp = self.http.post(&url).bearer_auth(token).json(&body).send().await.map_err(|e| DeviceError::Unreachable(format!("{url}: {e}")))?;
        decode(resp).await
    }

    /// Follows the session's pushed changes (server-sent events) until the stream ends.
    pub async fn watch(&self, session_id: &str, token: &str) -> Result<impl Stream<Item = Result<UniEvent, DeviceError>>, DeviceError> {
        let url = format!("{}/uni/v1/sessions/{session_id}/events", self.base);
        let resp = self.http.get(&url).bearer_auth(token).send().await.map_err(|e| DeviceError::Unreachable(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(decode::<serde_json::Value>(resp).await.err().unwrap_or(DeviceError::Decode("stream refused".into())));
        }
        let bytes = resp.bytes_stream();
        let mut buf = String::new();
        Ok(bytes
            .map(move |chunk| {
                let chunk = chunk.map_err(|e| DeviceError::Unreachable(e.to_string()))?;
                buf.push_str(&String::from_utf8_lossy(&chunk));
                let mut events = Vec::new();
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                    if !data.is_empty() {
                        events.push(serde_json::from_str(&data).map_err(|e| DeviceError::Decode(format!("{e}: {data}"))));
                    }
                }
                Ok::<_, DeviceError>(futures::stream::iter(events))
            })
            .filter_map(|r| async move {
                match r {
                    Ok(s) => Some(s.left_stream()),
                    Err(e) => Some(futures::stream::iter(vec![Err(e)]).right_stream()),
                }
            })
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_well_known_names_and_overrides() {
        let r = Resolver::parse("uni.mnc001.mcc001.pub.3gppnetwork.org=http://127.0.0.1:7080/");
        assert_eq!(r.resolve("001", "01"), "http://127.0.0.1:7080");
        assert_eq!(r.resolve("208", "15"), "https://uni.mnc015.mcc208.pub.3gppnetwork.org");
    }
}
