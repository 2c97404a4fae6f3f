//! The server's answers: `<welcome/>`, `<ack seq=".."/>`,
//! `<nack seq=".." code="..">why</nack>`, `<error code="..">why</error>`.
//! Ingest writes each on a line of its own.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One answer from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Welcome,
    Ack {
        seq: i64,
    },
    Nack {
        seq: Option<i64>,
        code: String,
        why: String,
    },
    Error {
        code: String,
        why: String,
    },
}

/// Why a line is not an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an answer: {line:?} ({why})")]
pub struct AnswerError {
    pub line: String,
    pub why: String,
}

impl Answer {
    /// Parses one answer line.
    pub fn parse(line: &str) -> Result<Answer, AnswerError> {
        let fail = |why: String| AnswerError {
            line: line.to_owned(),
            why,
        };
        let mut reader = Reader::from_str(line.trim());
        let mut root: Option<(String, Option<String>, Option<String>)> = None;
        let mut text = String::new();
        loop {
            match reader.read_event().map_err(|e| fail(e.to_string()))? {
                Event::Start(e) | Event::Empty(e) if root.is_none() => {
                    root = Some(head(&e).map_err(fail)?);
                }
                Event::Text(t) => text.push_str(&t.unescape().map_err(|e| fail(e.to_string()))?),
                Event::Eof => break,
                _ => {}
            }
        }
        let (name, seq, code) = root.ok_or_else(|| fail("no element".into()))?;
        let seq_num = match seq.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => return Err(fail(format!("bad seq: {e}"))),
        };
        match name.as_str() {
            "welcome" => Ok(Answer::Welcome),
            "ack" => Ok(Answer::Ack {
                seq: seq_num.ok_or_else(|| fail("ack without seq".into()))?,
            }),
            "nack" => Ok(Answer::Nack {
                seq: seq_num,
                code: code.unwrap_or_default(),
                why: text,
            }),
            "error" => Ok(Answer::Error {
                code: code.unwrap_or_default(),
                why: text,
            }),
            other => Err(fail(format!("unknown element <{other}>"))),
        }
    }
}

fn head(e: &BytesStart<'_>) -> Result<(String, Option<String>, Option<String>), String> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let (mut seq, mut code) = (None, None);
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let value = attr
            .unescape_value()
            .map_err(|e| e.to_string())?
            .into_owned();
        match attr.key.as_ref() {
            b"seq" => seq = Some(value),
            b"code" => code = Some(value),
            _ => {}
        }
    }
    Ok((name, seq, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_kind_parses() {
        assert_eq!(Answer::parse("<welcome/>").unwrap(), Answer::Welcome);
        assert_eq!(
            Answer::parse("<ack seq=\"42\"/>\n").unwrap(),
            Answer::Ack { seq: 42 }
        );
        assert_eq!(
            Answer::parse("<nack seq=\"43\" code=\"bad-reading\">bad number &quot;x&quot;</nack>")
                .unwrap(),
            Answer::Nack {
                seq: Some(43),
                code: "bad-reading".into(),
                why: "bad number \"x\"".into()
            }
        );
        assert_eq!(
            Answer::parse("<error code=\"auth\">unknown gateway or wrong token</error>").unwrap(),
            Answer::Error {
                code: "auth".into(),
                why: "unknown gateway or wrong token".into()
            }
        );
    }

    #[test]
    fn garbage_is_not_an_answer() {
        assert!(Answer::parse("hello").is_err());
        assert!(Answer::parse("<ack/>").is_err());
        assert!(Answer::parse("<ack seq=\"x\"/>").is_err());
        assert!(Answer::parse("<pong/>").is_err());
    }
}
