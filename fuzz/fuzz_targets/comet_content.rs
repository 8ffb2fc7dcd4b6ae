//! COMET content: arbitrary bytes as request and answer content. Contract: typed errors only;
//! whatever the lenient JSON reader accepts, Python-style writing reads back the same; a valid
//! request (its value not a non-finite number) re-encodes to content that decodes to it; Python
//! rendering and the non-finite member scan never panic.
#![no_main]

use comet_socket::dispatch::{Incoming, classify};
use comet_socket::{Frame, RawRequest, Response, json, pyrepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = json::from_slice(data) {
        let written = json::to_vec(&value).expect("a value always serializes");
        assert_eq!(json::from_slice(&written).ok(), Some(value.clone()));
        let _ = pyrepr::python_str(&value);
        let _ = json::is_truthy(&value);
    }
    let _ = Response::from_content(data);
    let _ = json::member_non_finite(data, "value");
    let _ = json::non_finite_literal(data);
    // A non-finite value is dispatched as `null`, which written back is a falsy `null`: only
    // the other requests round-trip.
    if let Ok(raw) = RawRequest::from_content(data)
        && raw.value_non_finite.is_none()
        && let Ok(request) = raw.into_request()
    {
        let content = request.to_content().expect("a request always serializes");
        let back = RawRequest::from_content(&content)
            .unwrap()
            .into_request()
            .unwrap();
        assert_eq!(back, request);
    }
    if let Ok(Incoming::Invalid(invalid)) = classify(&Frame::json(data.to_vec())) {
        assert!(
            invalid
                .comet_answer()
                .starts_with("Error: invalid action and or value ")
        );
    }
});
