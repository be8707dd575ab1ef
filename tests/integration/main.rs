//! The one integration-test binary: hookseal and its upstream over real sockets on 127.0.0.1.

mod support;

mod config;
mod observability;
mod proxy;
mod replay;
mod sign;
