//! Client frames through the decoder and the server core: see `mock_server::fuzz` for the
//! input format and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mock_server::fuzz::run(data);
});
