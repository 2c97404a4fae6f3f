//! What the tenant apps (ingest, admin) share: configuration read from the
//! environment, the Cassandra session, logging setup.
