//! A minimal HTTP/1.1 client over TCP for the tenant apps running in real
//! containers (one request per connection, `Connection: close`), and the
//! bits of the admin panel's forms a test needs: form encoding, hidden
//! fields, logging in.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a request may take to be answered in full.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    /// Every header, its name in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The values of every header called `name` (lowercase).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of every Set-Cookie header (without its attributes).
    pub fn cookies(&self) -> Vec<String> {
        self.headers_named("set-cookie")
            .filter_map(|v| v.split(';').next().map(|s| s.trim().to_owned()))
            .collect()
    }
}

/// `method path` on `addr` (`host:port`), sending `cookies` (`name=value`
/// each) and, if given, `form` as an urlencoded body.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    cookies: &[String],
    form: Option<&str>,
) -> std::io::Result<HttpAnswer> {
    let mut stream = TcpStream::connect(addr).await?;
    let body = form.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        request.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
    }
    if form.is_some() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The status of `GET path` on `addr`, or `None` if nothing answered.
pub async fn get_status(addr: &str, path: &str, cookies: &[String]) -> Option<u16> {
    request(addr, "GET", path, cookies, None)
        .await
        .ok()
        .map(|a| a.status)
}

/// Waits until `GET path` on `addr` answers 200.
pub async fn wait_for_200(addr: &str, path: &str, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    while get_status(addr, path, &[]).await != Some(200) {
        if started.elapsed() > within {
            return Err(format!("{addr}{path} did not answer 200 within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` text of `fields`.
pub fn form_urlencode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the `<input name="{name}" value="...">` in `html`.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].to_owned())
}

/// The CSRF token of the admin panel's form in `html`; panics if it has none.
pub fn csrf_field(html: &str) -> String {
    hidden_field(html, "csrf").unwrap_or_else(|| panic!("no csrf field in {html}"))
}

/// Logs in to the admin panel at `addr`; returns the session's cookies.
pub async fn admin_login(addr: &str, user: &str, password: &str) -> Vec<String> {
    let page = request(addr, "GET", "/login", &[], None)
        .await
        .unwrap_or_else(|e| panic!("GET /login on {addr}: {e}"));
    assert_eq!(page.status, 200, "GET /login: {}", page.body);
    let csrf = csrf_field(&page.body);
    let form = form_urlencode(&[("username", user), ("password", password), ("csrf", &csrf)]);
    let answer = request(addr, "POST", "/login", &page.cookies(), Some(&form))
        .await
        .unwrap_or_else(|e| panic!("POST /login on {addr}: {e}"));
    assert!(
        answer.status == 303 || answer.status == 302,
        "POST /login answered {}: {}",
        answer.status,
        answer.body
    );
    answer.cookies()
}
