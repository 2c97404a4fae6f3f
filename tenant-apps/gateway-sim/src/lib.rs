//! `gateway-sim`: a load generator speaking gateway protocol v1, and the
//! small gateway client it is built on (tests use the client too).
//!
//! - [`answer`]: parsing the server's one-line answers
//! - [`frames`]: building hello, reading and batch frames
//! - [`client`]: one gateway connection (connect, hello, send, read answers)
//! - [`sim`]: many gateways at a rate each; throughput and ack latency
//! - [`resilient`]: gateways that reconnect with backoff and resend what
//!   was not acked, recording every ack (the chaos run's load)
//! - [`timeline`]: the worst ack latency per slice of a run, to find stalls

pub mod answer;
pub mod client;
pub mod frames;
pub mod resilient;
pub mod sim;
pub mod timeline;
