//! Building the frames a gateway sends (protocol v1).

use chrono::{DateTime, SecondsFormat, Utc};

/// Escapes text for an attribute value or element content.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// `<hello gateway=".." token=".."/>`
pub fn hello(gateway: &str, token: &str) -> String {
    format!(
        "<hello gateway=\"{}\" token=\"{}\"/>\n",
        escape(gateway),
        escape(token)
    )
}

/// One value of a reading: name, unit, number.
#[derive(Debug, Clone, PartialEq)]
pub struct SimValue {
    pub name: String,
    pub unit: String,
    pub value: f64,
}

impl SimValue {
    pub fn new(name: &str, unit: &str, value: f64) -> Self {
        Self {
            name: name.into(),
            unit: unit.into(),
            value,
        }
    }
}

/// RFC 3339 with milliseconds, as gateways send it.
pub fn timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn values_into(out: &mut String, values: &[SimValue]) {
    for v in values {
        out.push_str(&format!(
            "<value name=\"{}\" unit=\"{}\">{}</value>",
            escape(&v.name),
            escape(&v.unit),
            v.value
        ));
    }
}

/// `<reading seq ts sensor>` with `values`.
pub fn reading(seq: i64, ts: DateTime<Utc>, sensor: &str, values: &[SimValue]) -> String {
    let mut out = format!(
        "<reading seq=\"{seq}\" ts=\"{}\" sensor=\"{}\">",
        timestamp(ts),
        escape(sensor)
    );
    values_into(&mut out, values);
    out.push_str("</reading>\n");
    out
}

/// `<batch seq>` of readings `(ts, sensor, values)`.
pub fn batch(seq: i64, readings: &[(DateTime<Utc>, String, Vec<SimValue>)]) -> String {
    let mut out = format!("<batch seq=\"{seq}\">");
    for (ts, sensor, values) in readings {
        out.push_str(&format!(
            "<reading ts=\"{}\" sensor=\"{}\">",
            timestamp(*ts),
            escape(sensor)
        ));
        values_into(&mut out, values);
        out.push_str("</reading>");
    }
    out.push_str("</batch>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_frame_looks_like_the_design() {
        let ts = DateTime::parse_from_rfc3339("2026-11-23T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let frame = reading(42, ts, "inverter-1", &[SimValue::new("power", "W", 1234.5)]);
        assert_eq!(
            frame,
            "<reading seq=\"42\" ts=\"2026-11-23T06:00:00.000Z\" sensor=\"inverter-1\"><value name=\"power\" unit=\"W\">1234.5</value></reading>\n"
        );
        assert_eq!(
            hello("gw&1", "t\"k"),
            "<hello gateway=\"gw&amp;1\" token=\"t&quot;k\"/>\n"
        );
    }
}
