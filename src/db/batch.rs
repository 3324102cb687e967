//! Group commit: concurrent writes of one kind share one write transaction.
//!
//! SQLite admits one writer at a time, and most of a small write's cost is the transaction
//! around it — taking the lock, and at `COMMIT` writing every touched page to the WAL with
//! its checksum. A request that submits a job to a [`GroupCommit`] either finds no batch
//! running and runs one itself (its own job, and every job queued meanwhile), or waits while
//! the running batch commits and is then answered by it, or by the next batch, which one of
//! the waiting requests leads. Nothing waits for a batch to fill: a lone job runs at once,
//! as a batch of one; under load, the jobs that arrive while a batch commits make the next.
//!
//! Each job runs inside its own savepoint, so a job that fails or asks to be undone leaves
//! no trace and does not disturb the others; a job is answered only after its batch
//! committed. Jobs are plain data (`Send`), run by whichever thread leads the batch.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Db, Error, Result, Tx};

/// What a job's function decided about its own writes.
pub enum Step<R> {
    /// Keep the job's writes (committed with the batch).
    Keep(R),
    /// Undo the job's writes (rolled back to its savepoint); the answer still goes back.
    Undo(R),
}

/// Runs jobs of type `J` in shared write transactions and answers each with its `R`.
pub struct GroupCommit<J, R> {
    run: fn(&Tx, J) -> Result<Step<R>>,
    max_batch: usize,
    inner: Mutex<Inner<J, R>>,
    answered: Condvar,
}

struct Inner<J, R> {
    next_ticket: u64,
    queue: Vec<(u64, J)>,
    answers: HashMap<u64, Result<R>>,
    leading: bool,
    /// Tickets of the running batch (taken from the queue by its leader).
    running: Vec<u64>,
}

impl<J, R> GroupCommit<J, R> {
    /// `run` does one job's writes inside the batch's transaction; at most `max_batch` jobs
    /// share one transaction.
    pub fn new(run: fn(&Tx, J) -> Result<Step<R>>, max_batch: usize) -> Self {
        GroupCommit {
            run,
            max_batch: max_batch.max(1),
            inner: Mutex::new(Inner {
                next_ticket: 0,
                queue: Vec::new(),
                answers: HashMap::new(),
                leading: false,
                running: Vec::new(),
            }),
            answered: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<J, R>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` in a batch and returns its answer once that batch committed. An error of
    /// the batch's transaction itself (it could not begin or commit) answers every job in it.
    pub fn submit(&self, db: &Db, job: J) -> Result<R> {
        let mut g = self.lock();
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.queue.push((ticket, job));
        loop {
            if let Some(answer) = g.answers.remove(&ticket) {
                return answer;
            }
            if g.leading {
                g = self.answered.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // No batch is running: this request runs the next one, its own job among the
            // first `max_batch` queued or not.
            g.leading = true;
            let n = g.queue.len().min(self.max_batch);
            let batch: Vec<(u64, J)> = g.queue.drain(..n).collect();
            g.running = batch.iter().map(|(t, _)| *t).collect();
            drop(g);
            // A job that panics must not leave `leading` set: every later submit would wait
            // for good. A batch that failed (its transaction could not begin or commit, or a
            // job panicked and the transaction unwound) answers every job taken into it with
            // the error, the jobs that joined it included.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run_batch(db, batch)
            }));
            g = self.lock();
            let running = std::mem::take(&mut g.running);
            let answers = match outcome {
                Ok(Ok(answers)) => answers,
                failed => {
                    let message = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "a job of its batch panicked".to_string(),
                    };
                    running
                        .into_iter()
                        .map(|t| (t, Err(Error::Io(message.clone()))))
                        .collect()
                }
            };
            g.answers.extend(answers);
            g.leading = false;
            self.answered.notify_all();
        }
    }

    /// Every job of `batch`, and those that join it, in one transaction; their answers once
    /// it committed. Each job taken is in `Inner::running`, for [`submit`] to answer if the
    /// batch fails.
    fn run_batch(&self, db: &Db, batch: Vec<(u64, J)>) -> Result<Vec<(u64, Result<R>)>> {
        db.write(|tx| {
            let mut answers = Vec::with_capacity(batch.len());
            let mut jobs = batch;
            loop {
                for (ticket, job) in jobs {
                    answers.push((ticket, self.run_one(tx, job)?));
                }
                // Jobs that arrived while these ran join before the commit: they would
                // otherwise wait for it and then commit alone.
                let mut g = self.lock();
                let room = self.max_batch.saturating_sub(answers.len());
                if g.queue.is_empty() || room == 0 {
                    break;
                }
                let n = g.queue.len().min(room);
                jobs = g.queue.drain(..n).collect();
                g.running.extend(jobs.iter().map(|(t, _)| *t));
            }
            Ok(answers)
        })
    }

    /// One job in its own savepoint.
    fn run_one(&self, tx: &Tx, job: J) -> Result<Result<R>> {
        tx.execute_batch("SAVEPOINT job")?;
        Ok(match (self.run)(tx, job) {
            Ok(Step::Keep(r)) => {
                tx.execute_batch("RELEASE job")?;
                Ok(r)
            }
            Ok(Step::Undo(r)) => {
                tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                Ok(r)
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                Err(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), std::time::Duration::from_secs(5)).unwrap();
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")?;
            Ok::<_, Error>(())
        })
        .unwrap();
        (dir, db)
    }

    /// The keys stored, in order.
    fn kept(db: &Db) -> Vec<i64> {
        db.read(|c| {
            let mut st = c.prepare("SELECT k FROM t ORDER BY k")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok::<_, Error>(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
        })
        .unwrap()
    }

    /// Inserts (k, k); an odd k is undone, k = 13 fails.
    fn insert(tx: &Tx, k: i64) -> Result<Step<i64>> {
        if k == 13 {
            tx.execute("INSERT INTO t (k, v) VALUES (?1, ?1)", [k])?;
            return Err(Error::Invalid("thirteen".into()));
        }
        tx.execute("INSERT INTO t (k, v) VALUES (?1, ?1)", [k])?;
        Ok(if k % 2 == 0 {
            Step::Keep(k)
        } else {
            Step::Undo(k)
        })
    }

    /// Inserts (k, k), then panics.
    fn insert_then_panic(tx: &Tx, k: i64) -> Result<Step<i64>> {
        tx.execute("INSERT INTO t (k, v) VALUES (?1, ?1)", [k])?;
        if k == 7 {
            panic!("a job panicked (expected by the test)");
        }
        Ok(Step::Keep(k))
    }

    #[test]
    fn a_job_that_panics_fails_its_batch_and_the_next_batch_runs() {
        let (_dir, db) = db();
        let gc = GroupCommit::new(insert_then_panic, 8);
        assert!(gc.submit(&db, 7).is_err());
        assert_eq!(gc.submit(&db, 8).unwrap(), 8);
        let kept = kept(&db);
        assert_eq!(kept, vec![8], "the panicking batch was rolled back");
    }

    #[test]
    fn every_job_is_answered_and_only_kept_jobs_stay() {
        let (_dir, db) = db();
        let db = Arc::new(db);
        let gc = Arc::new(GroupCommit::new(insert, 8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (db, gc) = (db.clone(), gc.clone());
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let k = t * 50 + i;
                            (k, gc.submit(&db, k))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut answered = 0;
        for th in threads {
            for (k, answer) in th.join().unwrap() {
                answered += 1;
                match answer {
                    Ok(r) => assert_eq!(r, k),
                    Err(_) => assert_eq!(k, 13),
                }
            }
        }
        assert_eq!(answered, 400);
        let kept = kept(&db);
        assert_eq!(kept, (0..400).filter(|k| k % 2 == 0).collect::<Vec<_>>());
    }
}
