//! `X-Forwarded-For` parsing (`headers::client_ip`). The first byte picks the socket peer, the
//! second which networks are trusted proxies, the rest (split on `\n`) are the header's
//! values. Oracle: an untrusted peer is the client whatever the header says; otherwise the
//! answer is the right-most hop that is not trusted, the left-most hop when all are trusted,
//! and `None` as soon as a hop (scanning from the right) is not an address.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use hookseal::config::IpNet;
use hookseal::headers::client_ip;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 6] = [
    "10.0.0.1",
    "127.0.0.1",
    "192.0.2.1",
    "::1",
    "::ffff:10.0.0.5",
    "2001:db8::7",
];
const NETS: [&str; 5] = [
    "10.0.0.0/8",
    "127.0.0.1",
    "::1/128",
    "192.0.2.0/24",
    "2001:db8::/32",
];

fn hop(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

fn reference(peer: IpAddr, values: &[&[u8]], trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for v in values {
        let v = std::str::from_utf8(v).ok()?;
        if !v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            return None;
        }
        hops.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    let mut answer = peer;
    for h in hops.iter().rev() {
        let ip = hop(h)?;
        answer = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(answer)
}

fuzz_target!(|data: &[u8]| {
    let [p, t, rest @ ..] = data else { return };
    let peer: IpAddr = PEERS[usize::from(*p) % PEERS.len()].parse().expect("peer");
    let trusted: Vec<IpNet> = NETS
        .iter()
        .enumerate()
        .filter(|(i, _)| t & (1 << i) != 0)
        .map(|(_, n)| IpNet::parse(n).expect("net"))
        .collect();
    let mut headers = HeaderMap::new();
    let mut values: Vec<&[u8]> = Vec::new();
    for v in rest.split(|b| *b == b'\n') {
        if let Ok(hv) = HeaderValue::from_bytes(v) {
            headers.append("x-forwarded-for", hv);
            values.push(v);
        }
    }
    let got = client_ip(peer, &headers, &trusted);
    assert_eq!(
        got,
        reference(peer, &values, &trusted),
        "{:?}",
        String::from_utf8_lossy(rest)
    );
});
