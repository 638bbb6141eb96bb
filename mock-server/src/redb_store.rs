//! The live server's durable store, on redb (pure Rust; `commit` fsyncs before it returns).
//!
//! One write transaction per batch holds everything a write changes: the key's stored
//! state, the user's revision counter and the writer's idempotency watermark — so after a
//! crash either all of a write is there or none of it, revisions are never reused, and a
//! resend is still recognised. Values are stored as JSON, which keeps the file readable
//! with any redb tool.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition};
use sync_core::protocol::Key;

use crate::core::store::{Durable, Mark, Record, Store, StoreError, Stored, TokenRecord};

/// `user \0 key` → [`Stored`] as JSON.
const KEYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("keys");
/// `user \0 device \0 key` → [`Mark`] as JSON.
const MARKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("marks");
/// `user` → the user's head revision.
const HEADS: TableDefinition<'_, &str, u64> = TableDefinition::new("heads");
/// `writes` → revisions assigned so far.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// token → [`TokenRecord`] as JSON: the tokens rotations made or retired.
const TOKENS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tokens");

/// redb's page cache. Its default, 1 GiB, fills as the file grows and is never given back,
/// memory no server limit bounds; and the server reads the store only when it starts (it
/// serves from memory), so the cache only helps a commit find the pages it changes.
/// 16 MiB holds those for a whole batch: `loadgen` measured no difference in writes/s.
const CACHE: usize = 16 << 20;

/// The file inside the data directory.
pub const FILE_NAME: &str = "sync-lab.redb";

/// A redb-backed [`Store`].
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{}: {what}: {e}", path.display()))
}

impl RedbStore {
    /// Opens the store in `dir`, or creates one if the directory has no store file. A
    /// file that is there but empty, truncated or corrupt is an error naming it: never
    /// taken for a new store (that would start revisions again at 1 under devices that
    /// know later ones).
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(dir, "cannot create the data directory", e))?;
        let path = dir.join(FILE_NAME);
        let existing = match std::fs::metadata(&path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(&path, "cannot read the store file", e)),
        };
        if existing == Some(0) {
            return Err(err(
                &path,
                "corrupt store",
                "the file is empty (0 bytes), so it holds no store; move it away to start a new one",
            ));
        }
        let db = guarded(&path, || {
            let db = match existing {
                Some(_) => Builder::new().set_cache_size(CACHE).open(&path),
                None => Builder::new().set_cache_size(CACHE).create(&path),
            };
            let db = db.map_err(|e| {
                err(
                    &path,
                    "cannot open the store (is it a Sync Lab data directory?)",
                    e,
                )
            })?;
            add_missing_tables(&db, &path)?;
            Ok(db)
        })?;
        Ok(RedbStore { db, path })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the tables a new store needs, and those added since in an older one.
fn add_missing_tables(db: &Database, path: &Path) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| err(path, "cannot write", e))?;
    {
        txn.open_table(KEYS)
            .map_err(|e| err(path, "keys table", e))?;
        txn.open_table(MARKS)
            .map_err(|e| err(path, "marks table", e))?;
        txn.open_table(HEADS)
            .map_err(|e| err(path, "heads table", e))?;
        txn.open_table(META)
            .map_err(|e| err(path, "meta table", e))?;
        txn.open_table(TOKENS)
            .map_err(|e| err(path, "tokens table", e))?;
    }
    txn.commit().map_err(|e| err(path, "cannot commit", e))
}

thread_local! {
    /// This thread is inside [`guarded`].
    static GUARDING: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic in a guard happened, when it was not in redb's own code.
    static OURS: Cell<Option<String>> = const { Cell::new(None) };
}

/// Runs `f`, turning a panic inside redb into a corrupt-store error: some damaged files
/// make redb 4 panic ("entered unreachable code" in its B-tree cursor) instead of failing.
/// Such a panic's own message is not printed (the error says it). A panic in this crate's
/// code is a bug, not damage: it is printed as usual and the error says where it was.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_redb = info.location().is_some_and(|l| is_redb_source(l.file()));
            if GUARDING.with(Cell::get) {
                OURS.with(|o| {
                    o.set(
                        info.location()
                            .filter(|_| !in_redb)
                            .map(|l| format!("{}:{}", l.file(), l.line())),
                    )
                });
                if in_redb {
                    return;
                }
            }
            previous(info);
        }));
    });
    let was = GUARDING.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDING.with(|g| g.set(was));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(match OURS.with(Cell::take) {
            Some(place) => err(path, "internal error", format!("{why} at {place}")),
            None => err(
                path,
                "corrupt store",
                format!("the store library failed while reading or writing it ({why})"),
            ),
        })
    })
}

/// A path in redb's own source (its crate directory is `redb-VERSION`).
fn is_redb_source(file: &str) -> bool {
    Path::new(file).components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with("redb-"))
    })
}

fn split(composite: &str, parts: usize) -> Option<Vec<&str>> {
    let v: Vec<&str> = composite.split('\0').collect();
    (v.len() == parts).then_some(v)
}

impl Store for RedbStore {
    fn load(&mut self) -> Result<Durable, StoreError> {
        let path = self.path.clone();
        guarded(&path, || self.load_unguarded())
    }

    fn commit(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        let path = self.path.clone();
        guarded(&path, || self.commit_unguarded(batch))
    }

    fn commit_tokens(&mut self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        guarded(&path, || {
            let p = &self.path;
            let txn = self
                .db
                .begin_write()
                .map_err(|e| err(p, "cannot write", e))?;
            {
                let mut table = txn
                    .open_table(TOKENS)
                    .map_err(|e| err(p, "tokens table", e))?;
                for (token, record) in tokens {
                    let json = serde_json::to_vec(record).expect("token records serialize");
                    table
                        .insert(token.as_str(), json.as_slice())
                        .map_err(|e| err(p, "tokens table", e))?;
                }
            }
            txn.commit().map_err(|e| err(p, "cannot commit", e))
        })
    }
}

impl RedbStore {
    fn load_unguarded(&mut self) -> Result<Durable, StoreError> {
        let p = &self.path;
        let txn = self.db.begin_read().map_err(|e| err(p, "cannot read", e))?;
        let mut data = Durable::default();
        let corrupt = |what: &str, at: &str| {
            err(
                p,
                "corrupt store",
                format!("{what} at `{}`", at.replace('\0', "/")),
            )
        };

        let keys = txn.open_table(KEYS).map_err(|e| err(p, "keys table", e))?;
        for item in keys.iter().map_err(|e| err(p, "keys table", e))? {
            let (k, v) = item.map_err(|e| err(p, "keys table", e))?;
            let composite = k.value();
            let [user, key] = split(composite, 2)
                .as_deref()
                .map(|v| [v[0], v[1]])
                .ok_or_else(|| corrupt("bad record name", composite))?;
            let key = Key::parse(key).map_err(|_| corrupt("unknown key", composite))?;
            let stored: Stored = serde_json::from_slice(v.value())
                .map_err(|_| corrupt("unreadable value", composite))?;
            data.users
                .entry(user.to_string())
                .or_default()
                .keys
                .insert(key, stored);
        }
        let marks = txn
            .open_table(MARKS)
            .map_err(|e| err(p, "marks table", e))?;
        for item in marks.iter().map_err(|e| err(p, "marks table", e))? {
            let (k, v) = item.map_err(|e| err(p, "marks table", e))?;
            let composite = k.value();
            let parts =
                split(composite, 3).ok_or_else(|| corrupt("bad watermark name", composite))?;
            let key = Key::parse(parts[2]).map_err(|_| corrupt("unknown key", composite))?;
            let mark: Mark = serde_json::from_slice(v.value())
                .map_err(|_| corrupt("unreadable watermark", composite))?;
            data.users
                .entry(parts[0].to_string())
                .or_default()
                .marks
                .entry(parts[1].to_string())
                .or_default()
                .insert(key, mark);
        }
        let heads = txn
            .open_table(HEADS)
            .map_err(|e| err(p, "heads table", e))?;
        for item in heads.iter().map_err(|e| err(p, "heads table", e))? {
            let (k, v) = item.map_err(|e| err(p, "heads table", e))?;
            data.users.entry(k.value().to_string()).or_default().head = v.value();
        }
        let meta = txn.open_table(META).map_err(|e| err(p, "meta table", e))?;
        data.writes = meta
            .get("writes")
            .map_err(|e| err(p, "meta table", e))?
            .map_or(0, |v| v.value());
        let tokens = txn
            .open_table(TOKENS)
            .map_err(|e| err(p, "tokens table", e))?;
        for item in tokens.iter().map_err(|e| err(p, "tokens table", e))? {
            let (k, v) = item.map_err(|e| err(p, "tokens table", e))?;
            // A token is a secret: a damaged record is named by its place, not its text.
            let record: TokenRecord = serde_json::from_slice(v.value())
                .map_err(|_| corrupt("unreadable token record", "tokens"))?;
            data.tokens.insert(k.value().to_string(), record);
        }
        for (user, d) in &data.users {
            if let Some(max) = d.keys.values().map(|s| s.rev).max()
                && max > d.head
            {
                return Err(corrupt("a key's revision is above the user's head", user));
            }
        }
        Ok(data)
    }

    fn commit_unguarded(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        let p = &self.path;
        let txn = self
            .db
            .begin_write()
            .map_err(|e| err(p, "cannot write", e))?;
        {
            let mut keys = txn.open_table(KEYS).map_err(|e| err(p, "keys table", e))?;
            let mut marks = txn
                .open_table(MARKS)
                .map_err(|e| err(p, "marks table", e))?;
            let mut heads = txn
                .open_table(HEADS)
                .map_err(|e| err(p, "heads table", e))?;
            let mut meta = txn.open_table(META).map_err(|e| err(p, "meta table", e))?;
            let writes = meta
                .get("writes")
                .map_err(|e| err(p, "meta table", e))?
                .map_or(0, |v| v.value());
            let last = LastOfBatch::of(batch);
            // One buffer for every joined key of the batch.
            let mut key = String::new();
            for ((user, k), s) in last.keys {
                let json = serde_json::to_vec(s).expect("stored values serialize");
                keys.insert(table_key(&mut key, &[user], k), json.as_slice())
                    .map_err(|e| err(p, "keys table", e))?;
            }
            for ((user, device, k), s) in last.marks {
                let mark = Mark {
                    local_rev: s.local_rev,
                    rev: s.rev,
                    value: s.value.clone(),
                };
                let json = serde_json::to_vec(&mark).expect("marks serialize");
                marks
                    .insert(table_key(&mut key, &[user, device], k), json.as_slice())
                    .map_err(|e| err(p, "marks table", e))?;
            }
            for (user, rev) in last.heads {
                let head = heads
                    .get(user)
                    .map_err(|e| err(p, "heads table", e))?
                    .map_or(0, |v| v.value());
                heads
                    .insert(user, head.max(rev))
                    .map_err(|e| err(p, "heads table", e))?;
            }
            meta.insert("writes", writes + batch.len() as u64)
                .map_err(|e| err(p, "meta table", e))?;
        }
        txn.commit().map_err(|e| err(p, "cannot commit", e))
    }
}

/// A table's key, `parts` and `key` joined by `\0`, written in `buf`.
fn table_key<'b>(buf: &'b mut String, parts: &[&str], key: &Key) -> &'b str {
    use std::fmt::Write;
    buf.clear();
    for part in parts {
        buf.push_str(part);
        buf.push('\0');
    }
    write!(buf, "{key}").expect("a String takes any text");
    buf
}

/// What a batch leaves in each table: of several writes to one key (or one device's mark
/// on a key) only the last, and each user's highest revision. Storing just that is the
/// same transaction's outcome with fewer B-tree inserts, and sorted by user, so that
/// inserts next to each other touch the same pages. The maps borrow their keys' parts
/// from the batch: formatting a joined key for each write was a third of the commit's
/// own work (apart from redb's), so it is done once per key stored.
struct LastOfBatch<'a> {
    /// `(user, key)` → its last stored state.
    keys: BTreeMap<(&'a str, &'a Key), &'a Stored>,
    /// `(user, device, key)` → the device's last write there (not the server's own).
    marks: BTreeMap<(&'a str, &'a str, &'a Key), &'a Stored>,
    /// user → the highest revision among its writes.
    heads: BTreeMap<&'a str, u64>,
}

impl<'a> LastOfBatch<'a> {
    fn of(batch: &'a [Record]) -> Self {
        let mut last = LastOfBatch {
            keys: BTreeMap::new(),
            marks: BTreeMap::new(),
            heads: BTreeMap::new(),
        };
        for r in batch {
            let s = &r.stored;
            last.keys.insert((&r.user, &r.key), s);
            if s.device_id != sync_core::protocol::model::SERVER_DEVICE_ID {
                last.marks.insert((&r.user, &s.device_id, &r.key), s);
            }
            let head = last.heads.entry(r.user.as_str()).or_default();
            *head = (*head).max(s.rev);
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(user: &str, key: &str, rev: u64, device: &str, local_rev: u64) -> Record {
        Record {
            user: user.into(),
            key: Key::parse(key).unwrap(),
            stored: Stored {
                value: json!(rev),
                rev,
                device_id: device.into(),
                local_rev,
                time_ms: rev * 1000,
            },
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sync-lab-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Including a batch with several writes to one key, by one device and by two, and
    /// writes of two users: only the last of each is stored, and every write is counted.
    #[test]
    fn what_is_committed_is_loaded_again_like_the_memory_store() {
        let dir = tempdir("redb-roundtrip");
        let batch = [
            record("ana", "settings/volume", 1, "phone", 1),
            record("bob", "like/b", 1, "phone", 1),
            record("ana", "settings/volume", 2, "laptop", 4),
            record("ana", "settings/volume", 3, "laptop", 5),
            record("ana", "like/a", 4, "phone", 2),
            record("bob", "like/a", 2, "server", 0),
        ];
        let rotated = |user: &str, expired| TokenRecord {
            user: user.into(),
            expired,
        };
        let tokens = [
            ("ta".to_string(), rotated("ana", true)),
            ("ta2".to_string(), rotated("ana", false)),
        ];
        {
            let mut store = RedbStore::open(&dir).unwrap();
            store.commit(&batch[..5]).unwrap();
            store.commit(&batch[5..]).unwrap();
            store.commit_tokens(&tokens).unwrap();
        }
        let mut expected = Durable::default();
        batch.iter().for_each(|r| expected.apply(r));
        expected.tokens.extend(tokens.iter().cloned());
        let loaded = RedbStore::open(&dir).unwrap().load().unwrap();
        assert_eq!(loaded, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_store_gives_a_clear_error() {
        let dir = tempdir("redb-corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(FILE_NAME),
            b"this is not a redb file at all, just text",
        )
        .unwrap();
        let e = RedbStore::open(&dir).err().expect("refused");
        assert!(e.to_string().contains(FILE_NAME), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A panic in this crate's own code inside a guard is a bug, not damage: the error says
    /// so and where; redb's panics (the corpus below) are a corrupt store.
    #[test]
    fn a_panic_of_our_own_inside_the_guard_is_an_internal_error_with_its_place() {
        let e = guarded::<()>(Path::new("x.redb"), || panic!("boom")).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("x.redb: internal error: boom at "), "{e}");
        assert!(e.contains("redb_store.rs:"), "{e}");
        assert!(!is_redb_source("mock-server/src/redb_store.rs"));
        assert!(is_redb_source(
            "/home/u/.cargo/registry/src/index.crates.io-1/redb-4.6.0/src/tree_store/btree.rs"
        ));
    }

    /// A store from before the tokens table gets the table when it is opened, and serves.
    #[test]
    fn a_store_from_before_the_tokens_table_still_opens() {
        let r = record("ana", "like/p", 1, "phone", 1);
        let old = tempdir("redb-old");
        std::fs::create_dir_all(&old).unwrap();
        {
            let db = Database::create(old.join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(KEYS).unwrap();
            txn.open_table(MARKS).unwrap();
            txn.open_table(HEADS).unwrap();
            txn.open_table(META).unwrap();
            txn.commit().unwrap();
        }
        RedbStore::open(&old)
            .unwrap()
            .commit(std::slice::from_ref(&r))
            .unwrap();
        let mut expected = Durable::default();
        expected.apply(&r);
        assert_eq!(RedbStore::open(&old).unwrap().load().unwrap(), expected);
        std::fs::remove_dir_all(&old).unwrap();
    }

    /// Damaged copies of a real store, made here: empty, truncated at several points,
    /// pages garbled, ranges zeroed. Each is refused with an error naming the file (as
    /// damage, not as a bug of ours), or read back whole; never a panic, never a fresh or
    /// an older store in its place. Opening may try to repair a file: a second start on
    /// one refused is refused again, or reads it back whole.
    #[test]
    fn damaged_store_files_are_refused_by_name_never_a_panic_nor_a_fresh_store() {
        let dir = tempdir("redb-damage");
        let mut expected = Durable::default();
        {
            let mut store = RedbStore::open(&dir).unwrap();
            for rev in 1..=300u64 {
                let r = record("ana", &format!("like/p{}", rev % 40), rev, "phone", rev);
                store.commit(std::slice::from_ref(&r)).unwrap();
                expected.apply(&r);
            }
        }
        let good = std::fs::read(dir.join(FILE_NAME)).unwrap();
        let len = good.len();
        let mut corpus: Vec<(String, Vec<u8>)> = vec![("empty".into(), Vec::new())];
        for cut in [
            1,
            16,
            512,
            4096,
            4097,
            len / 3,
            len / 2,
            len - 4096,
            len - 1,
        ] {
            corpus.push((format!("truncated at {cut}"), good[..cut].to_vec()));
        }
        for at in (0..len).step_by(4096).chain([len / 2]) {
            let mut garbled = good.clone();
            let end = (at + 4096).min(len);
            garbled[at..end].iter_mut().for_each(|b| *b ^= 0xa5);
            corpus.push((format!("page at {at} garbled"), garbled));
            let mut zeroed = good.clone();
            zeroed[at..(at + 512).min(len)].fill(0);
            corpus.push((format!("512 bytes at {at} zeroed"), zeroed));
        }
        let mut refused = 0;
        for (what, bytes) in &corpus {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(FILE_NAME), bytes).unwrap();
            match RedbStore::open(&dir).and_then(|mut s| s.load()) {
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains(FILE_NAME), "{what}: {e}");
                    let bug = format!("{FILE_NAME}: internal error");
                    assert!(!e.contains(&bug), "{what}: {e}");
                    if let Ok(loaded) = RedbStore::open(&dir).and_then(|mut s| s.load()) {
                        assert!(
                            loaded == expected,
                            "{what}: refused, then read back not whole"
                        );
                    }
                    refused += 1;
                }
                Ok(loaded) => assert!(loaded == expected, "{what}: read back, but not whole"),
            }
        }
        assert!(refused >= 10, "{refused} of {} refused", corpus.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
