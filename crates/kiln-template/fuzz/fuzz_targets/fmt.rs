//! `fmt` on arbitrary input: no panic, and formatting is a fixed point —
//! formatted output parses and formats to itself.

#![no_main]

use kiln_template::format::format_hcl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(once) = format_hcl(text, "f.pkr.hcl") {
        let twice = format_hcl(&once, "f.pkr.hcl").expect("formatted output must parse");
        assert_eq!(once, twice, "formatting is not idempotent");
    }
});
