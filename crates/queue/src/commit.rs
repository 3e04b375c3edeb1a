//! Group commit: the one thread that makes queue files durable.
//!
//! Sessions hand over finished messages; the thread takes every message
//! waiting (up to a batch limit), writes each to `incoming/ID` (O_EXCL),
//! then fsyncs the files and, once, the `incoming/` directory, and only then
//! acknowledges each. On ext4 the first fsync commits the journal
//! transaction that holds the whole batch, so the later ones are cheap:
//! concurrent sessions share one disk flush instead of paying one each.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};

use crate::spool::{Spool, State};

type Ack = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Job {
    id: String,
    bytes: Vec<u8>,
    ack: Ack,
}

/// Handle to the committer thread.
#[derive(Clone)]
pub struct Committer {
    tx: Sender<Job>,
}

/// Most messages made durable by one flush.
const MAX_BATCH: usize = 512;

impl Committer {
    pub fn start(spool: Spool) -> Committer {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("queue-commit".into())
            .spawn(move || run(spool, rx))
            .expect("spawn committer");
        Committer { tx }
    }

    /// Queues `bytes` as message `id`; `ack` is called once the file and
    /// its directory entry are on disk (or with the error that prevented it).
    pub fn commit(
        &self,
        id: String,
        bytes: Vec<u8>,
        ack: impl FnOnce(io::Result<()>) + Send + 'static,
    ) {
        if let Err(e) = self.tx.send(Job {
            id,
            bytes,
            ack: Box::new(ack),
        }) {
            (e.0.ack)(Err(io::Error::other("queue committer stopped")));
        }
    }
}

fn write_one(dir: &std::path::Path, job: &Job) -> io::Result<File> {
    let path: PathBuf = dir.join(&job.id);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    if let Err(e) = f.write_all(&job.bytes) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(f)
}

fn run(spool: Spool, rx: Receiver<Job>) {
    let dir = spool.dir(State::Incoming);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let written: Vec<io::Result<File>> = batch.iter().map(|j| write_one(&dir, j)).collect();
        // (file created by us, result of making it durable)
        let synced: Vec<(bool, io::Result<()>)> = written
            .into_iter()
            .map(|r| match r {
                Ok(f) => (true, f.sync_data()),
                Err(e) => (false, Err(e)),
            })
            .collect();
        let dir_sync = File::open(&dir).and_then(|d| d.sync_all());
        for (job, (created, r)) in batch.into_iter().zip(synced) {
            let result = match (&r, &dir_sync) {
                (Ok(()), Ok(())) => Ok(()),
                (Err(e), _) | (_, Err(e)) => {
                    if created {
                        let _ = std::fs::remove_file(dir.join(&job.id));
                    }
                    Err(io::Error::new(e.kind(), e.to_string()))
                }
            };
            (job.ack)(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn commits_and_refuses_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let c = Committer::start(spool.clone());
        let (tx, rx) = mpsc::channel();
        for id in ["A1", "A2", "A1"] {
            let tx = tx.clone();
            c.commit(id.into(), b"data".to_vec(), move |r| {
                tx.send(r.is_ok()).unwrap()
            });
        }
        let results: Vec<bool> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(results, [true, true, false]);
        assert_eq!(
            std::fs::read(spool.path(State::Incoming, "A1")).unwrap(),
            b"data"
        );
    }
}
