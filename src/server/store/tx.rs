//! A write transaction: its own on PostgreSQL, a share of the write
//! group's on SQLite.

use super::*;

/// A write transaction: dereferences to its connection. On SQLite it is
/// one job of a group commit (see [`GroupWriter`]); on Postgres, its own
/// transaction. Dropping it uncommitted rolls it back.
///
/// It also says what it changes ([`WriteTx::affects`]), so the process's
/// caches of store state drop exactly that when it commits.
pub struct WriteTx {
    inner: TxInner,
    /// What it said it changes; `None`, said nothing: anything.
    affects: Option<view::Affects>,
    view: Arc<view::UsageView>,
    /// What to announce once committed (see [`live`]).
    notices: Vec<live::Change>,
    live: Arc<live::LiveHub>,
    /// SQLite: what the group's memo keeps once this job ends.
    learned: memo::Learned,
    /// Released when the work is done: on SQLite when the job ends (the
    /// group's later commit changes nothing another writer could read
    /// differently), on PostgreSQL once committed.
    until_done: Vec<Box<dyn Send>>,
}

/// When a commit returns (see [`WriteTx::commit_written`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ack {
    /// Durable as the store's durability setting says.
    Synced,
    /// In the write-ahead log.
    Written,
}

pub(super) enum TxInner {
    Own(Transaction<'static, Any>),
    Grouped { group: tokio::sync::OwnedMutexGuard<Group>, flush: FlushOnDrop },
}

/// Wakes the flusher when a group job ends, however it ends: a job dropped
/// uncommitted leaves the group's transaction open, holding SQLite's write
/// lock, until the flusher rolls the job back and ends the group. (Declared
/// after the guard, so it fires once the turn is released.)
pub(super) struct FlushOnDrop(pub(super) Arc<tokio::sync::Notify>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl WriteTx {
    /// Narrows what this transaction changes, for the caches (the default,
    /// [`view::Affects::Anything`], forgets every cached entry). Calls add
    /// up; say every user whose subscription, usage or holds it writes.
    pub fn affects(&mut self, a: view::Affects) {
        let said = match self.affects.take() {
            None => a,
            Some(said) => said.and(a),
        };
        if let TxInner::Grouped { group, .. } = &self.inner {
            // Reservations beside this job may decide for other users.
            group.shared().running = Some(said.clone());
        }
        self.affects = Some(said);
    }

    /// A transaction that, until told otherwise, may change anything.
    pub(super) fn new(inner: TxInner, view: Arc<view::UsageView>, live: Arc<live::LiveHub>) -> WriteTx {
        WriteTx {
            inner,
            affects: None,
            view,
            notices: Vec::new(),
            live,
            learned: Default::default(),
            until_done: Vec::new(),
        }
    }

    /// Keeps `guard` (a writer's turn) until this transaction's work is
    /// done: on SQLite when its job ends, before the group's commit, so the
    /// next writer of the same user need not wait for the disk; on
    /// PostgreSQL once committed (its row locks are held until then).
    pub fn hold_until_done(&mut self, guard: impl Send + 'static) {
        self.until_done.push(Box::new(guard));
    }

    /// SQLite: the user's state as the write group's transaction holds it,
    /// if the group's memo has it (see [`memo`]); a reservation may decide
    /// on it. Always `None` on PostgreSQL.
    pub fn recall(&self, user_id: &UserId, now: DateTime<Utc>) -> Option<memo::Held> {
        match &self.inner {
            TxInner::Grouped { group, .. } => group.shared().memo.user(user_id, now).cloned(),
            TxInner::Own(_) => None,
        }
    }

    /// Whether this transaction's job feeds the write group's memo (SQLite):
    /// only then is [`WriteTx::learned_user`] worth working out.
    pub fn keeps_memo(&self) -> bool {
        matches!(self.inner, TxInner::Grouped { .. })
    }

    /// SQLite: the catalog revision the group's transaction holds, if known.
    pub fn recall_revision(&self) -> Option<i64> {
        match &self.inner {
            TxInner::Grouped { group, .. } => group.shared().memo.revision(),
            TxInner::Own(_) => None,
        }
    }

    /// Tells the group's memo, once this job has ended well, the user's
    /// state as this job leaves it. Say it only after the job's last write.
    pub fn learned_user(&mut self, user_id: &UserId, held: memo::Held) {
        self.learned.users.push((user_id.to_string(), held));
    }

    /// Tells the group's memo the catalog revision this job read.
    pub fn learned_revision(&mut self, revision: i64) {
        self.learned.revision = Some(revision);
    }

    /// Announces, once committed, that this transaction changed `kind` for
    /// `user_id` (the live stream's pages re-read it).
    pub fn notify(&mut self, user_id: &UserId, kind: live::Kind) {
        let c = live::Change::new(user_id.as_str(), kind);
        if !self.notices.contains(&c) {
            self.notices.push(c);
        }
    }

    /// Commits; returns once the work is durable. Whatever the outcome (a
    /// failed commit may still have been applied), the caches drop what
    /// this transaction changed before this returns. Then what it changed
    /// is announced: on PostgreSQL by NOTIFY, sent inside the transaction
    /// and delivered by Postgres on commit, to every node.
    pub async fn commit(self) -> StoreResult<()> {
        self.commit_as(Ack::Synced).await
    }

    /// [`WriteTx::commit`], but on SQLite in `power` durability it returns
    /// once the work is committed to the write-ahead log, before the sync
    /// that makes it survive a power cut (which follows within one
    /// `fdatasync`, see [`super::wal_sync`]): it survives a crash or
    /// `kill -9` of Tally. Elsewhere the same as `commit`. For work whose
    /// answer cannot wait for the disk (the proxy's record of a call it
    /// has answered).
    pub async fn commit_written(self) -> StoreResult<()> {
        self.commit_as(Ack::Written).await
    }

    async fn commit_as(self, ack: Ack) -> StoreResult<()> {
        let WriteTx { mut inner, affects, view, notices, live, learned, until_done } = self;
        let affects = affects.unwrap_or_default();
        if let (TxInner::Own(tx), false) = (&mut inner, notices.is_empty())
            && let Err(e) = Self::send_notices(tx, &live, &notices).await
        {
            view.forget(&affects);
            return Err(e);
        }
        let grouped = matches!(inner, TxInner::Grouped { .. });
        let outcome = Self::commit_inner(inner, &affects, learned, until_done, ack).await;
        view.forget(&affects);
        if grouped && outcome.is_ok() {
            live.publish(notices);
        }
        outcome
    }

    /// Commits without waiting for the work to be durable, for writes a
    /// crash may lose harmlessly: a reservation's holds only keep room for
    /// calls in flight, and expire by themselves; the calls' events are
    /// recorded durably on their own. The work is visible to the next
    /// writer at once (SQLite: the same group transaction; PostgreSQL:
    /// committed with `synchronous_commit = off`, which skips only the wait
    /// for the WAL flush). On SQLite the caches drop what it changed again
    /// once its group has committed, and it is announced then.
    /// Begin it with [`Store::begin_unsynced`]: on PostgreSQL that is what
    /// turns the flush wait off.
    pub async fn commit_unsynced(self) -> StoreResult<()> {
        if let TxInner::Own(_) = &self.inner {
            return self.commit().await;
        }
        let WriteTx { inner, affects, view, notices, live, learned, until_done } = self;
        let affects = affects.unwrap_or_default();
        let TxInner::Grouped { mut group, flush } = inner else { unreachable!("handled above") };
        group.end_job(&affects, learned);
        drop(until_done);
        let mut done = group.done.as_ref().expect("an open group has waiters").subscribe();
        drop(group);
        drop(flush);
        view.forget(&affects);
        tokio::spawn(async move {
            let committed = matches!(done.wait_for(Option::is_some).await.map(|o| o.clone()), Ok(Some(Ok(_))));
            // A reader may have refilled the caches from before the commit.
            view.forget(&affects);
            if committed {
                live.publish(notices);
            }
        });
        Ok(())
    }

    async fn send_notices(
        tx: &mut Transaction<'static, Any>,
        live: &live::LiveHub,
        notices: &[live::Change],
    ) -> StoreResult<()> {
        for payload in live::payloads(notices) {
            sqlx::query("SELECT pg_notify($1, $2)").bind(live.channel()).bind(payload).execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn commit_inner(
        inner: TxInner,
        affects: &view::Affects,
        learned: memo::Learned,
        until_done: Vec<Box<dyn Send>>,
        ack: Ack,
    ) -> StoreResult<()> {
        match inner {
            TxInner::Own(tx) => tx.commit().await?,
            TxInner::Grouped { mut group, flush } => {
                group.end_job(affects, learned);
                drop(until_done);
                let mut done = group.done.as_ref().expect("an open group has waiters").subscribe();
                let syncer = group.syncer.clone();
                drop(group);
                drop(flush);
                let outcome = done.wait_for(Option::is_some).await.map(|o| o.clone().expect("is some"));
                match outcome {
                    Ok(Ok(seq)) => {
                        if let (Ack::Synced, Some(syncer)) = (ack, syncer) {
                            syncer.synced(seq).await?;
                        }
                    }
                    Ok(Err(e)) => return Err(StoreError::Group(e)),
                    // The flusher is gone (the runtime is shutting down).
                    Err(_) => return Err(StoreError::Group(Arc::new(sqlx::Error::WorkerCrashed.into()))),
                }
            }
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self.inner {
            TxInner::Own(tx) => tx.rollback().await?,
            TxInner::Grouped { mut group, .. } => group.undo_job().await?,
        }
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        match &self.inner {
            TxInner::Own(tx) => tx,
            TxInner::Grouped { group, .. } => group.conn.as_deref().expect("a group job runs in the open transaction"),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match &mut self.inner {
            TxInner::Own(tx) => tx,
            TxInner::Grouped { group, .. } => group.conn(),
        }
    }
}
