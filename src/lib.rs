//! hookseal: a sidecar reverse proxy that verifies webhook signatures before the app sees them.
//!
//! The binary (`src/main.rs`) is thin: it parses the CLI, loads a [`config::Config`], binds the
//! listeners and runs [`app::App::run`]. Everything else lives here so tests, benches and fuzz
//! targets can drive it directly.
//!
//! The library has no `unsafe` code; the only `unsafe` of the project is the glibc allocator
//! tuning in the binary (`src/main.rs`).

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod body;
pub mod config;
pub mod error;
pub mod events;
pub mod fetch;
pub mod headers;
pub mod hex;
pub mod loglimit;
pub mod metrics;
pub mod otel;
pub mod outcome;
pub mod proxy;
pub mod queue;
pub mod rejections;
pub mod reload;
pub mod replay;
pub mod route;
pub mod server;
pub mod swap;
pub mod tls;
pub mod upstream;
pub mod verify;
pub mod workers;
