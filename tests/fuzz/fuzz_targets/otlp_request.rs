#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| k8s_exporter_fuzz::targets::otlp_request(data));
