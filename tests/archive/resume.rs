//! Resuming a partial archive: after `kill -9` of a real writer process, after a torn journal line
//! and a half-written entry, after data lost under the journal's feet, and after a full disk.
//! Each ends in a finished archive that verifies and holds what an uninterrupted run writes.
//!
//! The child processes are this test binary itself, running one of the `child_*` tests with an
//! environment variable set; without it those tests return at once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use cvarchive::archive::{journal_path, BagReader, BagWriter, Error};
use sha2::{Digest, Sha256};

use super::bags::{assert_verifies, bag_contents, finish_to, items, partial_for, write_items, Item, BAG, FP};

const KILL_CHILD_ENV: &str = "CVARCHIVE_TEST_WRITER_CHILD";
const DISK_FULL_ENV: &str = "CVARCHIVE_TEST_DISK_FULL_DIR";

/// Runs the test `name` of this binary as a child process.
fn this_test(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    cmd
}

/// Resumes `final_path`'s partial, checks what it found against `list`, adds the rest, finishes,
/// and checks the result verifies and equals an uninterrupted write of `list`. Returns how many
/// entries the resume found.
fn resume_and_complete(final_path: &Path, list: &[Item]) -> usize {
    let (mut w, found) = BagWriter::resume(&partial_for(final_path), BAG, FP).unwrap();
    for e in &found {
        let item = list.iter().find(|i| i.path() == e.data_path).expect("a path we wrote");
        assert_eq!((e.sha256, e.size), (item.sha256(), item.bytes().len() as u64), "{}", e.data_path);
        assert!(w.contains(&e.data_path).unwrap().is_some());
    }
    for item in list {
        if w.contains(item.path()).unwrap().is_none() {
            item.add(&mut w).unwrap();
        }
    }
    finish_to(w, final_path);
    assert_verifies(final_path);
    let dir = tempfile::tempdir().unwrap();
    let reference = write_items(dir.path(), "reference.zip", list, |_| {});
    assert_eq!(bag_contents(final_path), bag_contents(&reference));
    found.len()
}

/// The child of [`a_writer_killed_at_any_moment_resumes`]: writes items, saying so after each.
#[test]
fn child_writes_until_killed() {
    let Some(final_path) = std::env::var_os(KILL_CHILD_ENV) else { return };
    let mut w = BagWriter::create(&partial_for(Path::new(&final_path)), BAG, FP).unwrap();
    for (i, item) in items(600).iter().enumerate() {
        item.add(&mut w).unwrap();
        println!("added {}", i + 1);
    }
    loop {
        std::thread::park();
    }
}

#[test]
fn a_writer_killed_at_any_moment_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("killed.zip");
    let mut child = this_test("archive::resume::child_writes_until_killed")
        .env(KILL_CHILD_ENV, &final_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let saw = lines.any(|line| line.unwrap() == "added 200");
    child.kill().unwrap(); // SIGKILL, wherever it is
    child.wait().unwrap();
    assert!(saw, "the child stopped before writing 200 items");
    assert!(!final_path.exists());
    let found = resume_and_complete(&final_path, &items(600));
    // Once an add returns, at most 63 journal lines are still waiting (batches of 64).
    assert!(found >= 200 - 63, "only {found} entries survived");
    eprintln!("killed after 200 items were added: {found} resumed");
}

/// Writes the first `n` items of `list` to `final_path`'s partial, with a checkpoint after
/// `checkpoint_after`, and drops the writer (keeping partial and journal).
fn interrupted_write(final_path: &Path, list: &[Item], n: usize, checkpoint_after: usize) {
    let mut w = BagWriter::create(&partial_for(final_path), BAG, FP).unwrap();
    for (i, item) in list[..n].iter().enumerate() {
        item.add(&mut w).unwrap();
        if i + 1 == checkpoint_after {
            w.checkpoint().unwrap();
        }
    }
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

#[test]
fn a_torn_journal_line_and_a_half_written_entry_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(90);
    let final_path = dir.path().join("torn.zip");
    let partial = partial_for(&final_path);
    interrupted_write(&final_path, &list, 70, 30);
    let partial_len = std::fs::metadata(&partial).unwrap().len();
    // Half an entry: a real local header and some of its data, then the crash.
    let head = std::fs::read(&partial).unwrap()[..20_000].to_vec();
    append(&partial, &head[..12_345]);
    append(&journal_path(&partial), br#"{"op":"add","path":"projects/11111111-1111-1111-1111-11111"#);

    let (w, found) = BagWriter::resume(&partial, BAG, FP).unwrap();
    assert_eq!(found.len(), 70);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), partial_len, "the half entry is cut off");
    drop(w);
    assert_eq!(resume_and_complete(&final_path, &list), 70);
}

#[test]
fn entries_whose_bytes_are_not_on_disk_are_dropped_with_all_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(90);
    let template = dir.path().join("template.zip");
    interrupted_write(&template, &list, 80, 30);
    let partial_bytes = std::fs::read(partial_for(&template)).unwrap();
    let journal_bytes = std::fs::read(journal_path(&partial_for(&template))).unwrap();
    // Where each item's data starts, from the local headers of the partial file.
    let scan = BagReader::open(&partial_for(&template)).unwrap();
    assert!(scan.recovered().is_some(), "a partial file has no central directory");
    let offset_of = |i: usize| {
        let e = crate::support::entries(&scan)
            .into_iter()
            .find(|e| e.name == format!("bag/data/{}", list[i].path()))
            .unwrap();
        (e.header_offset, e.header_offset + 30 + e.raw_name.len() as u64 + e.compressed_size)
    };

    // The file ends in the middle of item 60's data (the page cache lost it).
    let cut = dir.path().join("cut.zip");
    let (start, end) = offset_of(60);
    std::fs::write(partial_for(&cut), &partial_bytes[..(start + end) as usize / 2]).unwrap();
    std::fs::write(journal_path(&partial_for(&cut)), &journal_bytes).unwrap();
    // Item 50's data (after the checkpoint) reads back as zeros, its header intact.
    let zeroed = dir.path().join("zeroed.zip");
    let (start, end) = offset_of(50);
    let mut bytes = partial_bytes.clone();
    bytes[end as usize - 100..end as usize].fill(0);
    std::fs::write(partial_for(&zeroed), bytes).unwrap();
    std::fs::write(journal_path(&partial_for(&zeroed)), &journal_bytes).unwrap();

    for (path, survivors, file_end) in [(&cut, 60, offset_of(60).0), (&zeroed, 50, start)] {
        let (w, found) = BagWriter::resume(&partial_for(path), BAG, FP).unwrap();
        let paths: Vec<_> = found.iter().map(|e| e.data_path.as_str()).collect();
        let want: Vec<_> = list[..survivors].iter().map(|i| i.path()).collect();
        assert_eq!(paths, want, "{}", path.display());
        assert_eq!(std::fs::metadata(partial_for(path)).unwrap().len(), file_end);
        drop(w);
        assert_eq!(resume_and_complete(path, &list), survivors);
    }
}

/// The child of [`a_full_disk_is_an_error_naming_the_archive_and_the_state_resumes`], run on a
/// 4 MiB tmpfs mounted at `$CVARCHIVE_TEST_DISK_FULL_DIR` in its own mount namespace.
#[test]
fn child_fills_a_small_filesystem() {
    let Some(dir) = std::env::var_os(DISK_FULL_ENV) else { return };
    let dir = Path::new(&dir);
    // Ballast, removed later to make room, as a user would.
    std::fs::write(dir.join("ballast"), vec![1u8; 512 << 10]).unwrap();
    let final_path = dir.join("full.zip");
    let partial = partial_for(&final_path);
    let mut w = BagWriter::create(&partial, "full", FP).unwrap();
    let blob = |i: usize| -> Vec<u8> { (0..256 << 10).map(|j: usize| (j.wrapping_mul(i + 3) >> 3) as u8).collect() };
    let (mut added, mut checkpointed) = (0, 0);
    let err = loop {
        let bytes = blob(added);
        if let Err(e) =
            w.add_stored(&format!("blob-{added}.bin"), &bytes, crc32fast::hash(&bytes), Sha256::digest(&bytes).into())
        {
            break e;
        }
        added += 1;
        if added % 3 == 0 {
            if let Err(e) = w.checkpoint() {
                break e;
            }
            checkpointed = added;
        }
    };
    let msg = cvarchive::text::error_chain(&err);
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(msg.contains("full.zip.partial") && msg.contains("No space left"), "{msg}");
    drop(w);
    assert!(partial.exists() && journal_path(&partial).exists() && !final_path.exists());

    std::fs::remove_file(dir.join("ballast")).unwrap();
    let (mut w, found) = BagWriter::resume(&partial, "full", FP).unwrap();
    assert!(found.len() >= checkpointed && found.len() <= added, "{} of {added}", found.len());
    for (i, e) in found.iter().enumerate() {
        assert_eq!(e.data_path, format!("blob-{i}.bin"));
        assert_eq!(e.sha256, <[u8; 32]>::from(Sha256::digest(blob(i))));
    }
    let bytes = blob(999);
    w.add_stored("last.bin", &bytes, crc32fast::hash(&bytes), Sha256::digest(&bytes).into()).unwrap();
    w.finish(&crate::support::fixtures::info()).unwrap();
    std::fs::rename(&partial, &final_path).unwrap();
    let reader = BagReader::open(&final_path).unwrap();
    assert!(reader.recovered().is_none());
    assert_eq!(reader.entry_count(), found.len() + 5);
    let mut buf = vec![0u8; 1 << 16];
    for e in crate::support::entries(&reader) {
        assert_eq!(reader.hash_entry(&e, &mut buf).unwrap().crc32, e.crc32, "{}", e.name);
    }
    println!("disk-full child: {added} added, {checkpointed} checkpointed, {} resumed", found.len());
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_error_naming_the_archive_and_the_state_resumes() {
    // A real full file system needs a mount: root, in a private mount namespace.
    if !crate::support::tools::require_unshare() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@""#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(dir.path())
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "archive::resume::child_fills_a_small_filesystem", "--nocapture", "--test-threads=1"])
        .env(DISK_FULL_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = stdout.find("disk-full child: ").map(|at| stdout[at..].lines().next().unwrap_or_default());
    eprintln!("{}", summary.unwrap_or_else(|| panic!("the child did not do its work: {stdout}")));
    // The mount was the child's own: nothing is left here.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A watcher that records the last position it was told of, as `store::upload` would.
#[derive(Default)]
struct Told {
    written: std::sync::atomic::AtomicU64,
    journaled: std::sync::atomic::AtomicU64,
}

impl cvarchive::store::upload::Watcher for Told {
    fn written(&self, flushed: u64) -> std::io::Result<()> {
        self.written.fetch_max(flushed, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn journaled(&self, end: u64) {
        self.journaled.fetch_max(end, std::sync::atomic::Ordering::Relaxed);
    }
    fn finishing(&self) {}
}

#[test]
fn a_writer_shipped_as_it_grows_writes_forward_with_data_descriptors_and_resumes_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let list = items(12);
    let final_path = dir.path().join("shipped.zip");
    let partial = partial_for(&final_path);
    let told = std::sync::Arc::new(Told::default());
    let mut w = BagWriter::create(&partial, BAG, FP).unwrap();
    w.ship(told.clone());
    for item in &list[..6] {
        item.add(&mut w).unwrap();
    }
    w.checkpoint().unwrap();
    let at_checkpoint = w.written_bytes();
    drop(w);
    assert_eq!(told.journaled.load(std::sync::atomic::Ordering::Relaxed), at_checkpoint);
    assert!(told.written.load(std::sync::atomic::Ordering::Relaxed) >= at_checkpoint);

    // The resume reads the streamed entries' data descriptors (no header was patched).
    let (mut w, found) = BagWriter::resume(&partial, BAG, FP).unwrap();
    assert_eq!(found.len(), 6, "every entry written before the stop is kept");
    assert!(found.iter().any(|e| e.descriptor), "a streamed entry has a data descriptor");
    w.ship(std::sync::Arc::new(Told::default()));
    for item in &list[6..] {
        item.add(&mut w).unwrap();
    }
    finish_to(w, &final_path);
    assert_verifies(&final_path);
    // Another reader (the zip crate) reads every entry, descriptors and all.
    let whole = bag_contents(&final_path);
    let plain = write_items(dir.path(), "plain.zip", &list, |_| {});
    assert_eq!(whole, bag_contents(&plain), "the same content as a local archive");
    assert!(journal_path(&partial).exists(), "a shipped writer keeps its journal until the store has committed");
}

#[test]
fn a_refused_copy_in_a_shipped_archive_stays_as_a_gap_and_a_resume_steps_over_it() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than the writer's buffer, so the refused copy's bytes reach the file.
    let big: Vec<u8> = (0..6u32 << 20).map(|i| (i.wrapping_mul(31) % 251) as u8).collect();
    let path = "projects/p/images/big.jpg";
    let base_path = write_items(dir.path(), "base.zip", &[Item::Stored(path.into(), big.clone())], |_| {});
    let base = BagReader::open(&base_path).unwrap();
    let entry = base.bag_entry(&format!("data/{path}")).unwrap().unwrap();

    let final_path = dir.path().join("gap.zip");
    let partial = partial_for(&final_path);
    let list = items(4);
    let mut w = BagWriter::create(&partial, BAG, FP).unwrap();
    w.ship(std::sync::Arc::new(Told::default()));
    list[0].add(&mut w).unwrap();
    let before = w.written_bytes();
    let refused = w.add_raw_from(&base, &entry, path, [7; 32]).unwrap_err();
    assert!(refused.to_string().contains("SHA-256"), "{refused}");
    assert!(w.written_bytes() > before + (2 << 20), "the refused bytes that reached the file stay there");
    list[1].add(&mut w).unwrap();
    w.checkpoint().unwrap();
    drop(w);

    let (mut w, found) = BagWriter::resume(&partial, BAG, FP).unwrap();
    assert_eq!(found.len(), 2, "the entries on both sides of the gap are kept: {found:?}");
    w.ship(std::sync::Arc::new(Told::default()));
    for item in &list[2..] {
        item.add(&mut w).unwrap();
    }
    finish_to(w, &final_path);
    assert_verifies(&final_path);
    let contents = bag_contents(&final_path);
    assert!(!contents.contains_key(&format!("data/{path}")), "the refused copy is in no entry");
}
