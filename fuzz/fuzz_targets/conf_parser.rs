//! Fuzz target for the wg-quick `.conf` parser: any UTF-8 text either parses or yields an error
//! whose line number lies inside the text; whatever parses must survive a write/parse round trip
//! unchanged, and writing must be deterministic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_proto::config::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, None) {
        Ok(config) => {
            let written = config.to_conf();
            let again = match parse(&written, None) {
                Ok(again) => again,
                Err(e) => panic!("canonical text does not parse: {e}\n{written}"),
            };
            assert_eq!(again, config, "round trip changed the config:\n{written}");
            assert_eq!(again.to_conf(), written, "writing is not deterministic");
            let _ = config.to_conf_without_private_key();
        }
        Err(e) => {
            if let Some(line) = e.line() {
                let lines = text.split('\n').count();
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            }
            let _ = e.to_string();
        }
    }
});
