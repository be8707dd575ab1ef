//! The `sns` engine's message parser (`SnsMessage::parse`) and canonical string. Oracle:
//! nothing panics; a parsed message has SignatureVersion 1 or 2, a confirmation carries its
//! `SubscribeURL` and `Token`, only a notification keeps a `Subject`; its canonical string
//! starts with the `Message` field and ends with `Type\n<type>\n`, and is the same when the
//! message is parsed again; `topic_region` of a parsed ARN is one of its `:`-separated fields.

#![no_main]

use hookseal::verify::sns::{topic_region, MessageType, SnsMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = SnsMessage::parse(data) else {
        return;
    };
    assert!(matches!(m.signature_version, 1 | 2));
    if m.kind != MessageType::Notification {
        assert!(m.subscribe_url.is_some() && m.token.is_some());
        assert!(m.subject.is_none());
    }
    let c = m.canonical();
    let head = format!("Message\n{}\n", m.message);
    assert!(c.starts_with(head.as_bytes()));
    let tail = format!("Type\n{}\n", m.kind.as_str());
    assert!(c.ends_with(tail.as_bytes()));
    assert_eq!(SnsMessage::parse(data).unwrap().canonical(), c);
    if let Some(region) = topic_region(&m.topic_arn) {
        assert!(m.topic_arn.contains(&format!(":{region}:")));
    }
});
