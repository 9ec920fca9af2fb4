//! Fuzzes config parsing and validation: any document is accepted or refused with errors,
//! never a panic; an accepted document survives a serialize/parse round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vr_crds::DataPlaneConfig;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = DataPlaneConfig::from_yaml(&text) {
        let again = serde_yaml::to_string(&cfg).expect("serializes");
        let back = DataPlaneConfig::from_yaml(&again).expect("round trip parses");
        assert_eq!(back, cfg);
    }
});
