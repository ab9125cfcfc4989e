//! The tar reader never panics; every header it accepts survives a round
//! trip through the writer (path, normalised; kind, mode, owner, mtime,
//! xattrs, size) unless the writer refuses it as unsafe.
#![no_main]

use kiln_image::tar::{EntryKind, TarReader, TarWriter, normalize_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = TarReader::new(data);
    for _ in 0..256 {
        let Ok(Some(e)) = r.next_entry() else { break };
        let mut content = vec![];
        if r.read_data(&mut |b| {
            content.extend_from_slice(b);
            Ok(())
        })
        .is_err()
        {
            break;
        }
        if e.path.is_empty() || e.path.contains(&0) || e.sparse.is_some() {
            continue;
        }
        if let EntryKind::HardLink(l) | EntryKind::Symlink(l) = &e.kind {
            if l.contains(&0) {
                continue;
            }
        }
        if e.xattrs.iter().any(|(k, _)| k.is_empty()) || e.mtime.sec < 0 {
            continue;
        }
        let mut w = TarWriter::new(Vec::new());
        let stored = if matches!(e.kind, EntryKind::File) {
            content.clone()
        } else {
            vec![]
        };
        let mut e2 = e.clone();
        e2.size = stored.len() as u64;
        // The writer refuses unsafe names (`..`, absolute, NUL, …) and links
        // to entries it has not written: nothing to compare then.
        if w.start_entry(&e2).is_err() {
            continue;
        }
        w.write_data(&stored).expect("in-memory write");
        let bytes = w.finish().expect("in-memory finish");
        let back = TarReader::new(&bytes[..])
            .next_entry()
            .expect("re-read")
            .expect("an entry");
        let is_dir = e2.kind == EntryKind::Directory;
        let (norm, _) = normalize_path(&e2.path, is_dir).expect("accepted paths normalise");
        assert_eq!(back.path, norm);
        assert_eq!(back.kind, e2.kind);
        assert_eq!(back.mode, e2.mode);
        assert_eq!((back.uid, back.gid), (e2.uid, e2.gid));
        assert_eq!(back.mtime, e2.mtime);
        assert_eq!(back.xattrs, e2.xattrs);
        assert_eq!(back.size, e2.size);
    }
});
