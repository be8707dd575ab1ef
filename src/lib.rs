//! hookseal: a sidecar reverse proxy that verifies webhook signatures before the app sees them.

pub mod replay;
pub mod verify;
