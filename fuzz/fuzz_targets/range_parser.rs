//! Fuzzes `Range` parsing: never panics, and a partial range always lies inside the object.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vr_dataplane::serve::{parse_range, RangeSpec};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) % (1 << 40);
    let value = String::from_utf8_lossy(&data[8..]);
    if let RangeSpec::Partial { start, end } = parse_range(&value, len) {
        assert!(start <= end && end < len, "{value:?} len={len} → {start}-{end}");
    }
});
