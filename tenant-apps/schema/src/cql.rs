//! Connecting to Cassandra from outside its Docker network, and the names
//! of consistency levels in configuration.
//!
//! A single node in a container advertises its address on the Docker
//! network (`broadcast_rpc_address`). Code on the host reaches it through a
//! port published on loopback instead, so the driver must be told to send
//! every connection there. In-network clients (the tenant containers) need
//! none of this: they reach the node by name.

use std::net::SocketAddr;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{NewSessionError, TranslationError};
use scylla::policies::address_translator::{AddressTranslator, UntranslatedPeer};

/// Reaches every node at one fixed address: the published port of a
/// single node.
#[derive(Debug, Clone, Copy)]
pub struct PublishedPortTranslator(pub SocketAddr);

#[async_trait::async_trait]
impl AddressTranslator for PublishedPortTranslator {
    async fn translate_address(
        &self,
        _peer: &UntranslatedPeer,
    ) -> Result<SocketAddr, TranslationError> {
        Ok(self.0)
    }
}

/// A session with a single node reached through a published port (see
/// [`PublishedPortTranslator`]).
pub async fn connect_published(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Result<Session, NewSessionError> {
    SessionBuilder::new()
        .known_node_addr(addr)
        .address_translator(Arc::new(PublishedPortTranslator(addr)))
        .user(user, password)
        .build()
        .await
}

/// A consistency level by its CQL name (any case; what
/// `INGEST_WRITE_CONSISTENCY` and the provisioner's
/// `[cassandra] write_consistency` accept): `one`, `two`, `three`, `quorum`, `all`,
/// `local_quorum`, `each_quorum`, `local_one`.
pub fn parse_consistency(raw: &str) -> Result<scylla::statement::Consistency, String> {
    Ok(match raw.trim().to_ascii_lowercase().as_str() {
        "one" => scylla::statement::Consistency::One,
        "two" => scylla::statement::Consistency::Two,
        "three" => scylla::statement::Consistency::Three,
        "quorum" => scylla::statement::Consistency::Quorum,
        "all" => scylla::statement::Consistency::All,
        "local_quorum" => scylla::statement::Consistency::LocalQuorum,
        "each_quorum" => scylla::statement::Consistency::EachQuorum,
        "local_one" => scylla::statement::Consistency::LocalOne,
        other => {
            return Err(format!(
                "{other:?} is not a write consistency: one, two, three, quorum, all, local_quorum, each_quorum or local_one"
            ))
        }
    })
}

/// The CQL name of a consistency level that [`parse_consistency`] reads.
pub fn consistency_name(c: scylla::statement::Consistency) -> &'static str {
    use scylla::statement::Consistency as C;
    match c {
        C::One => "one",
        C::Two => "two",
        C::Three => "three",
        C::Quorum => "quorum",
        C::All => "all",
        C::LocalQuorum => "local_quorum",
        C::EachQuorum => "each_quorum",
        C::LocalOne => "local_one",
        C::Any => "any",
        C::Serial => "serial",
        C::LocalSerial => "local_serial",
    }
}
