//! A real SMTP server for the notifier's tests: Debian's `python3-aiosmtpd`
//! running `tests/smtp/sink.py`, which stores every message it accepts in
//! a directory of its own and can refuse chosen recipients (a 451 or a
//! 550). [`SmtpSink`] starts it on a free port (loopback, or the Docker
//! bridge's gateway address so containers reach it as
//! `host.docker.internal`), stops it and starts it again on the same port
//! (the relay down and back), and reads back what it received, parsed
//! with `mailparse` ([`ReceivedMail`]).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailparse::{DispositionType, MailHeaderMap, ParsedMail};

/// The interpreter with Debian's aiosmtpd: `PROVISION_SMTP_PYTHON`, else
/// `/usr/bin/python3` (a python3 earlier on the PATH, e.g. pyenv's, may
/// not see Debian's packages).
fn python() -> String {
    std::env::var("PROVISION_SMTP_PYTHON").unwrap_or_else(|_| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".to_owned()
        } else {
            "python3".to_owned()
        }
    })
}

fn sink_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py")
}

/// A running (or stopped) test SMTP server and the mail it received.
#[derive(Debug)]
pub struct SmtpSink {
    host: IpAddr,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `none`, `starttls` or `tls`, with its certificate and key files.
    tls: (String, Option<(PathBuf, PathBuf)>),
}

/// A free TCP port on `host`.
fn free_port_on(host: IpAddr) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .unwrap_or_else(|e| panic!("cannot bind a port on {host}: {e}"))
        .local_addr()
        .expect("a bound port has an address")
        .port()
}

impl SmtpSink {
    /// A sink on loopback.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A sink listening on `host` (an address of this machine).
    pub fn start_on(host: IpAddr) -> SmtpSink {
        let dir = std::env::temp_dir().join(format!(
            "provision-smtp-{}",
            crate::unique_id("sink").replace('_', "-")
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
        let mut sink = SmtpSink {
            host,
            port: free_port_on(host),
            dir,
            child: None,
            tls: ("none".to_owned(), None),
        };
        sink.resume();
        sink
    }

    /// A sink on loopback speaking TLS: `mode` `starttls` (required) or
    /// `tls` (implicit), with a certificate chain and key (PEM).
    pub fn start_tls(mode: &str, cert_pem: &str, key_pem: &str) -> SmtpSink {
        let mut sink = SmtpSink::start();
        sink.stop();
        let cert = sink.dir.join("cert.pem");
        let key = sink.dir.join("key.pem");
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        sink.tls = (mode.to_owned(), Some((cert, key)));
        sink.resume();
        sink
    }

    pub fn host(&self) -> IpAddr {
        self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (the relay is down: connections are refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (the relay is back), and
    /// returns once it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the sink already runs");
        let mut child = Command::new(python())
            .arg(sink_script())
            .arg("--host")
            .arg(self.host.to_string())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--tls")
            .arg(&self.tls.0)
            .args(self.tls.1.iter().flat_map(|(cert, key)| {
                [
                    "--cert".as_ref(),
                    cert.as_os_str(),
                    "--key".as_ref(),
                    key.as_os_str(),
                ]
            }))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the test SMTP server ({} {:?}): {e}; run scripts/setup (python3-aiosmtpd)",
                    python(),
                    sink_script()
                )
            });
        // It prints "ready" once it listens (a port just freed may take a
        // moment to bind again: it exits, and we retry).
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if !line.starts_with("ready") {
            let status = child.wait();
            panic!(
                "the test SMTP server did not start on {}:{} ({status:?}); is python3-aiosmtpd installed? (scripts/setup)",
                self.host, self.port
            );
        }
        let addr = SocketAddr::new(self.host, self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the test SMTP server does not accept on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// Answers RCPT TO for `address` with `reply` (`"550 5.1.1 no such
    /// mailbox"`, `"451 4.3.0 try later"`) from now on; `None` accepts it
    /// again.
    pub fn refuse(&self, address: &str, reply: Option<&str>) {
        let path = self.dir.join("refuse.json");
        let mut map: serde_json::Map<String, serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        match reply {
            Some(reply) => {
                map.insert(address.to_lowercase(), reply.into());
            }
            None => {
                map.remove(&address.to_lowercase());
            }
        }
        let tmp = self.dir.join("refuse.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&map).unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let raw = std::fs::read(&eml).unwrap_or_else(|e| panic!("{eml:?}: {e}"));
                let meta: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(eml.with_extension("json"))
                        .unwrap_or_else(|e| panic!("{eml:?}'s envelope: {e}")),
                )
                .unwrap();
                let nanos: i64 = eml
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.split('-').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_default();
                let mut mail = ReceivedMail::parse(&meta, raw);
                mail.received_at = chrono::DateTime::from_timestamp_nanos(nanos);
                mail
            })
            .collect()
    }

    /// The mails once there are at least `n`, within `within`; panics
    /// naming what arrived otherwise.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            if Instant::now() > deadline {
                let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
                panic!("{n} mails expected within {within:?}, got {subjects:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An attachment of a received mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One received mail, parsed.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// `MAIL FROM`.
    pub envelope_from: String,
    /// `RCPT TO` (the ones accepted).
    pub envelope_to: Vec<String>,
    /// The `To` header's addresses.
    pub to: Vec<String>,
    pub from: Vec<String>,
    pub subject: String,
    pub message_id: String,
    /// The `text/plain` body (the first one).
    pub text: Option<String>,
    /// The `text/html` body (the first one).
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub raw: Vec<u8>,
    /// When the sink took it (the end of its DATA).
    pub received_at: chrono::DateTime<chrono::Utc>,
}

fn header_addresses(mail: &ParsedMail<'_>, name: &str) -> Vec<String> {
    mail.headers
        .get_all_headers(name)
        .into_iter()
        .filter_map(|h| mailparse::addrparse_header(h).ok())
        .flat_map(|list| {
            list.iter()
                .flat_map(|a| match a {
                    mailparse::MailAddr::Single(s) => vec![s.addr.clone()],
                    mailparse::MailAddr::Group(g) => {
                        g.addrs.iter().map(|s| s.addr.clone()).collect()
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn walk(part: &ParsedMail<'_>, out: &mut ReceivedMail) {
    if !part.subparts.is_empty() {
        for sub in &part.subparts {
            walk(sub, out);
        }
        return;
    }
    let disposition = part.get_content_disposition();
    if disposition.disposition == DispositionType::Attachment {
        out.attachments.push(Attachment {
            filename: disposition
                .params
                .get("filename")
                .cloned()
                .unwrap_or_default(),
            content_type: part.ctype.mimetype.clone(),
            bytes: part.get_body_raw().unwrap_or_default(),
        });
        return;
    }
    match part.ctype.mimetype.as_str() {
        "text/plain" if out.text.is_none() => out.text = part.get_body().ok(),
        "text/html" if out.html.is_none() => out.html = part.get_body().ok(),
        _ => {}
    }
}

impl ReceivedMail {
    fn parse(meta: &serde_json::Value, raw: Vec<u8>) -> ReceivedMail {
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut mail = ReceivedMail {
            envelope_from: meta["mail_from"].as_str().unwrap_or("").to_owned(),
            envelope_to: strings(&meta["rcpt_tos"]),
            to: Vec::new(),
            from: Vec::new(),
            subject: String::new(),
            message_id: String::new(),
            text: None,
            html: None,
            attachments: Vec::new(),
            raw: Vec::new(),
            received_at: chrono::DateTime::UNIX_EPOCH,
        };
        let parsed = mailparse::parse_mail(&raw)
            .unwrap_or_else(|e| panic!("a received mail does not parse: {e}"));
        mail.subject = parsed
            .headers
            .get_first_value("Subject")
            .unwrap_or_default();
        mail.message_id = parsed
            .headers
            .get_first_value("Message-ID")
            .unwrap_or_default();
        mail.to = header_addresses(&parsed, "To");
        mail.from = header_addresses(&parsed, "From");
        walk(&parsed, &mut mail);
        drop(parsed);
        mail.raw = raw;
        mail
    }

    /// The text body, or an empty string.
    pub fn body(&self) -> &str {
        self.text.as_deref().unwrap_or("")
    }
}

/// The gateway address of the engine's default bridge (`docker0`), where
/// `host-gateway` points: a sink listening there is `host.docker.internal`
/// to a container started with `--add-host host.docker.internal:host-gateway`.
pub async fn bridge_gateway(docker: &bollard::Docker) -> IpAddr {
    let network = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap_or_else(|e| panic!("cannot inspect the default bridge network: {e}"));
    let configs = network
        .ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default();
    // The engine may leave the default bridge's gateway out of its answer;
    // it is then the subnet's first address (what docker0 holds).
    let first_of_subnet = |subnet: &str| -> Option<IpAddr> {
        let (net, _) = subnet.split_once('/')?;
        let net: Ipv4Addr = net.parse().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(u32::from(net) + 1)))
    };
    configs
        .iter()
        .find_map(|c| c.gateway.as_deref().and_then(|g| g.parse().ok()))
        .or_else(|| {
            configs
                .iter()
                .find_map(|c| first_of_subnet(c.subnet.as_deref()?))
        })
        .expect("the default bridge has a gateway address")
}
