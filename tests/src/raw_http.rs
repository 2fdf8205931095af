//! A raw HTTP/1.1 server's two halves, byte by byte: read one request, write one answer
//! (with an honest, lying or no `Content-Length`). For servers that must misbehave in
//! ways a framework would not let them (tests/it/hostile.rs) or that log every byte they
//! receive ([`crate::attacker`]).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// A request as a raw server reads it: method, URL (on `127.0.0.1:port`) and body.
pub struct Request {
    pub method: String,
    pub url: Url,
    pub body: Vec<u8>,
}

/// Read one HTTP/1.1 request (head and `Content-Length` body, at most 1 MiB); `None` when
/// the client hangs up first or sends a head larger than 64 KiB.
pub async fn read_request(sock: &mut TcpStream, port: u16) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        match sock.read(&mut chunk).await? {
            0 => return Ok(None),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        request_line.next().unwrap_or_default().to_string(),
        request_line.next().unwrap_or_default().to_string(),
    );
    let content_length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + content_length.min(1 << 20) {
        match sock.read(&mut chunk).await? {
            0 => break,
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let url = Url::parse(&format!("http://127.0.0.1:{port}{target}")).expect("request target");
    Ok(Some(Request {
        method,
        url,
        body: buf.split_off(head_end),
    }))
}

/// What `Content-Length` [`respond`] sends.
#[derive(Debug, Clone, Copy)]
pub enum Length {
    /// The real length.
    Honest,
    /// This number, whatever the body is.
    Lying(u64),
    /// No Content-Length: the body ends when the connection closes.
    None,
}

/// Write one answer (status, content type, `length`, body) and close the connection.
pub async fn respond(
    sock: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    length: Length,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Hostile\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    );
    match length {
        Length::Honest => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
        Length::Lying(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Length::None => {}
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await?;
    sock.shutdown().await
}
