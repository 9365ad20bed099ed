//! Terminal access: a command running in an instance's container, attached over the
//! platform's exec WebSocket (subprotocol [`EXEC_PROTOCOL`]; the framing is described there).

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use op_types::observe::{CLOSE, EXEC_PROTOCOL, RESIZE, STATUS, STDERR, STDIN, STDOUT};
use op_types::Uid;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ClientError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the process did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// It wrote to standard output (everything, with a terminal).
    Stdout(Vec<u8>),
    /// It wrote to standard error.
    Stderr(Vec<u8>),
    /// It ended with this exit code (`None` if the runtime could not say).
    Exit(Option<i64>),
}

/// An attached exec.
pub struct Exec {
    socket: Socket,
}

/// The input half of a split [`Exec`].
pub struct ExecInput(SplitSink<Socket, Message>);

/// The output half of a split [`Exec`].
pub struct ExecOutput(SplitStream<Socket>);

fn ws_error(e: WsError) -> ClientError {
    match e {
        WsError::Http(resp) => {
            let status = resp.status();
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().to_string();
            crate::api_error(reqwest::StatusCode::from_u16(status.as_u16()).unwrap_or(reqwest::StatusCode::BAD_GATEWAY), &body)
        }
        e => ClientError::WebSocket(e.to_string()),
    }
}

fn framed(channel: u8, payload: &[u8]) -> Message {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(channel);
    v.extend_from_slice(payload);
    Message::Binary(v.into())
}

/// Decodes one message from the platform; `None` for messages that carry nothing.
fn decode(msg: Message) -> Result<Option<ExecEvent>, ClientError> {
    let Message::Binary(b) = msg else { return Ok(None) };
    let Some((&channel, payload)) = b.split_first() else { return Ok(None) };
    Ok(match channel {
        STDOUT => Some(ExecEvent::Stdout(payload.to_vec())),
        STDERR => Some(ExecEvent::Stderr(payload.to_vec())),
        STATUS => {
            let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| ClientError::Decode(format!("exec status: {e}")))?;
            Some(ExecEvent::Exit(v["exitCode"].as_i64()))
        }
        _ => None,
    })
}

impl Exec {
    pub(crate) async fn open(base: &str, token: Option<&str>, id: Uid, cmd: &[String], tty: bool) -> Result<Self, ClientError> {
        let ws_base = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(ClientError::WebSocket(format!("terminal access needs a plain http:// platform URL, not {base}")));
        };
        let mut query: Vec<String> = cmd.iter().map(|a| format!("command={}", utf8_percent_encode(a, NON_ALPHANUMERIC))).collect();
        query.push(format!("tty={tty}"));
        let url = format!("{ws_base}/op/v1/appinstances/{id}/exec?{}", query.join("&"));
        let mut req = url.into_client_request().map_err(ws_error)?;
        req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(EXEC_PROTOCOL));
        if let Some(t) = token {
            let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|e| ClientError::WebSocket(format!("token: {e}")))?;
            req.headers_mut().insert("authorization", v);
        }
        let (socket, _) = tokio_tungstenite::connect_async(req).await.map_err(ws_error)?;
        Ok(Self { socket })
    }

    /// Splits into an input and an output half, to write and read at the same time.
    pub fn split(self) -> (ExecInput, ExecOutput) {
        let (tx, rx) = self.socket.split();
        (ExecInput(tx), ExecOutput(rx))
    }

    /// Sends `stdin` and end-of-file, then collects everything until the process ends:
    /// `(stdout, stderr, exit code)`. For commands that take their input at once.
    pub async fn run(self, stdin: &[u8]) -> Result<(Vec<u8>, Vec<u8>, Option<i64>), ClientError> {
        let (mut input, mut output) = self.split();
        if !stdin.is_empty() {
            input.write(stdin).await?;
        }
        input.close_stdin().await?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(ev) = output.next().await? {
            match ev {
                ExecEvent::Stdout(b) => out.extend(b),
                ExecEvent::Stderr(b) => err.extend(b),
                ExecEvent::Exit(code) => return Ok((out, err, code)),
            }
        }
        Err(ClientError::WebSocket("the platform closed the exec before the process ended".into()))
    }
}

impl ExecInput {
    /// Writes to the process's standard input.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.0.send(framed(STDIN, bytes)).await.map_err(ws_error)
    }

    /// Ends the process's standard input.
    pub async fn close_stdin(&mut self) -> Result<(), ClientError> {
        self.0.send(framed(CLOSE, &[STDIN])).await.map_err(ws_error)
    }

    /// Resizes the terminal (an exec opened with `tty`).
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ClientError> {
        self.0.send(framed(RESIZE, serde_json::json!({"cols": cols, "rows": rows}).to_string().as_bytes())).await.map_err(ws_error)
    }
}

impl ExecOutput {
    /// The next thing the process did; `None` once the platform closed the session.
    pub async fn next(&mut self) -> Result<Option<ExecEvent>, ClientError> {
        while let Some(msg) = self.0.next().await {
            if let Some(ev) = decode(msg.map_err(ws_error)?)? {
                return Ok(Some(ev));
            }
        }
        Ok(None)
    }
}
