//! Every scheme's header parsing and verification: a whole request (scheme, clock, options,
//! secrets, method, target, headers, body) in the text format of `hookseal_fuzz::parse_case`.
//! Besides not panicking, an accepted request must name a configured secret and carry a
//! timestamp inside the window, and verifying twice must give the same answer. The
//! pipeline's check (handshakes: query parameters, small JSON bodies) runs too, when it is
//! ready without a fetch, and must agree with `verify` on a verified delivery.

#![no_main]

use hookseal::verify::{Check, Checked, Scheme};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(case) = hookseal_fuzz::parse_case(data) else {
        return;
    };
    let Ok(scheme) = Scheme::new(case.scheme, &case.options, &case.secrets) else {
        return;
    };
    let input = case.request.input();
    let first = scheme.verify(&input, case.now);
    hookseal_fuzz::check_verified(&scheme, case.secrets.len(), case.now, &first);
    let again = scheme.verify(&input, case.now);
    assert_eq!(first.is_ok(), again.is_ok());
    if let (Err(a), Err(b)) = (&first, &again) {
        assert_eq!(a, b);
    }
    let check = scheme.check(input, case.now);
    if let Check::Ready(Ok(Checked::Verified(v))) = &check {
        assert_eq!(first.as_ref().map(|f| f.key_index).ok(), Some(v.key_index));
    }
    drop(check);
});
