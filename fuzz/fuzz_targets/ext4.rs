//! ext4 superblock, group descriptors, inodes, extents, directories, xattrs:
//! never panic, never loop (the walk is bounded).
#![no_main]

use kiln_image::block::{CachedDevice, MemDevice};
use kiln_image::ext4::Ext4;
use kiln_image::fs::{FileSystem, walk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = CachedDevice::new(MemDevice::new(data.to_vec(), "fuzz"), 1 << 20);
    let Ok(fs) = Ext4::open(Box::new(dev)) else {
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
