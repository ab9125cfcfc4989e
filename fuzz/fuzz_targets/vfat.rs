//! FAT boot sector, FAT chains, long names: never panic, never loop.
#![no_main]

use kiln_image::block::{CachedDevice, MemDevice};
use kiln_image::fs::{FileSystem, walk};
use kiln_image::vfat::Vfat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = CachedDevice::new(MemDevice::new(data.to_vec(), "fuzz"), 1 << 20);
    let Ok(fs) = Vfat::open(Box::new(dev)) else {
        return;
    };
    let mut budget = 2000;
    let _ = walk(&fs, &mut |e| {
        budget -= 1;
        if e.inode.file_type == kiln_image::fs::FileType::Regular {
            let _ = fs.read_all(&e.inode, 1 << 16);
        }
        Ok(budget > 0)
    });
});
