//! A minimal HTTP/1.1 client over one keep-alive connection, enough for the load generator
//! and the tests to talk to the service on loopback (responses with `Content-Length`, which
//! is what the service sends). It keeps the load generator free of a full HTTP client stack.

use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON: {e}"))
    }
}

/// One connection to the service.
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client for `addr` (connects on first use, and again after an error).
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// Opens the connection now (otherwise the first request does).
    pub async fn connect(&mut self) -> std::io::Result<()> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        Ok(())
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, None).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&mut self, path: &str, body: &str) -> std::io::Result<Response> {
        self.request("PUT", path, Some(body)).await
    }

    /// `POST path` with an empty body.
    pub async fn post(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("POST", path, Some("")).await
    }

    /// Sends one request and reads its response; on any error the connection is dropped.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let r = self.request_inner(method, path, body).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn request_inner(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        self.connect().await?;
        let conn = self.conn.as_mut().ok_or_else(eof)?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        if let Some(b) = body {
            req.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        conn.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Err(eof());
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&line))?;
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err(eof());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').ok_or_else(|| bad(l))?;
            let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_string());
            if n == "content-length" {
                length = v.parse().map_err(|_| bad(l))?;
            }
            headers.push((n, v));
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed by the server",
    )
}

fn bad(line: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("bad HTTP response line: {line:?}"),
    )
}
