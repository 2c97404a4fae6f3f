//! Connecting to Cassandra from outside its Docker network.
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
