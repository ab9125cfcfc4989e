//! qcow2 header, L1/L2 tables, compressed clusters: never panic.
#![no_main]

use kiln_image::block::BlockDevice;
use kiln_image::qcow2::Qcow2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-qcow2-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(q) = Qcow2::open(&path) {
        let size = q.size();
        let mut buf = vec![0u8; 70_000];
        for off in [0, size / 2, size.saturating_sub(70_000)] {
            let n = (size - off.min(size)).min(buf.len() as u64) as usize;
            let _ = q.read_at(&mut buf[..n], off);
        }
    }
});
