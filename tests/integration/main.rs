//! The one integration-test binary: hookseal and its upstream over real sockets on 127.0.0.1.

mod netkit;
mod support;
mod tlskit;

mod config;
mod debugging;
mod events;
mod faults;
mod handshakes;
mod hardening;
mod limits;
mod observability;
mod ops;
mod outbound;
mod properties;
mod proxy;
mod queue;
mod reference;
mod reload;
mod replay;
mod review;
mod sign;
mod tls;
