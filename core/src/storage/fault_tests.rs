//! Crash tests on the fault-injecting file layer ([`super::fs::fault`]).

use std::path::Path;

use super::fs::fault::{Fault, Mode, Rng};

/// A data directory on tmpfs when there is one: syncs cost nothing there, and the fault layer,
/// not the device, decides what survives.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

/// The fault layer itself: an unsynced write is undone, a synced one kept, a torn crash keeps
/// some pages of a multi-page write and undoes others, new names vanish without a directory
/// fsync, and a rename is undone to what the target held.
#[test]
fn the_fault_layer_undoes_exactly_what_no_sync_covered() {
    use super::fs::{self, DataFile};
    let dir = tempdir();
    let root = dir.path();
    let durable = root.join("durable");
    let fresh = root.join("fresh");
    std::fs::write(root.join("meta"), b"old").unwrap();
    {
        let fault = Fault::register(root);
        let f = DataFile::create_new(&durable).unwrap();
        fs::sync_parent(&durable).unwrap();
        f.write_at(0, b"synced").unwrap();
        f.sync_data().unwrap();
        f.write_at(0, b"lost!!").unwrap();
        f.write_at(100, b"grown").unwrap();
        fs::atomic_write(&root.join("meta"), b"new").unwrap();
        let g = DataFile::create_new(&fresh).unwrap();
        g.write_at(0, b"x").unwrap();
        g.sync_data().unwrap();
        fault.crash();
        assert!(f.write_at(0, b"after").is_err(), "writes after the crash must fail");
        fault.apply(Mode::DropAll).unwrap();
    }
    assert_eq!(std::fs::read(&durable).unwrap(), b"synced");
    assert!(!fresh.exists(), "a name whose directory was never fsynced survived");
    assert_eq!(std::fs::read(root.join("meta")).unwrap(), b"new", "a synced rename was undone");

    // Torn: over seeds, a 4-page unsynced write keeps some pages and undoes others.
    let (mut kept, mut undone) = (0, 0);
    for seed in 1..20u64 {
        let dir = tempdir();
        let path = dir.path().join("torn");
        std::fs::write(&path, vec![0u8; 4 * 4096]).unwrap();
        {
            let fault = Fault::register(dir.path());
            let f = DataFile::open(&path).unwrap();
            f.write_at(0, &vec![1u8; 4 * 4096]).unwrap();
            fault.crash();
            fault.apply(Mode::Torn(seed)).unwrap();
        }
        let b = std::fs::read(&path).unwrap();
        for page in b.chunks(4096) {
            assert!(page.iter().all(|x| *x == page[0]), "a page was torn inside");
            if page[0] == 1 { kept += 1 } else { undone += 1 }
        }
    }
    assert!(kept > 0 && undone > 0, "kept {kept} pages, undid {undone}");

    // A rename not followed by a directory fsync is undone to the old content.
    let dir = tempdir();
    let meta = dir.path().join("meta");
    std::fs::write(&meta, b"old").unwrap();
    {
        let fault = Fault::register(dir.path());
        let tmp = dir.path().join("meta.tmp");
        let f = DataFile::create_new(&tmp).unwrap();
        f.write_at(0, b"new").unwrap();
        f.sync_data().unwrap();
        fault.rename(&tmp, &meta).unwrap();
        fault.crash();
        fault.apply(Mode::DropAll).unwrap();
    }
    assert_eq!(std::fs::read(&meta).unwrap(), b"old");
    assert!(!dir.path().join("meta.tmp").exists());

    // The crash point: the N-th operation completes, every later one fails.
    let mut rng = Rng(7);
    for _ in 0..10 {
        let dir = tempdir();
        let n = 1 + rng.below(6);
        let fault = Fault::register(dir.path());
        fault.crash_after(n);
        let f = DataFile::create_new(&dir.path().join("a")).unwrap();
        let done = (0..8u64).take_while(|i| f.write_at(*i, b"x").is_ok()).count() as u64;
        assert_eq!(done + 1, n, "crash after op {n}");
        assert!(fault.crashed());
    }

    // A failed sync drops the unsynced writes (the kernel's view after a failed writeback), and
    // a retried sync succeeds without them.
    let dir = tempdir();
    let path = dir.path().join("b");
    std::fs::write(&path, b"old").unwrap();
    {
        let fault = Fault::register(dir.path());
        let f = DataFile::open(&path).unwrap();
        f.write_at(0, b"new").unwrap();
        fault.fail_next_sync("/b");
        assert!(f.sync_data().is_err());
        assert_eq!(fault.failed_syncs(), 1);
        f.sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
