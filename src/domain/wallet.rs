//! Prepaid credits: a customer's wallet of grants, and the entries that
//! record every change to its balance.
//!
//! A wallet is its open grants (not yet effective, or effective with money
//! left) and a debt: what calls cost beyond the grants (a call that happened
//! cannot be refused afterwards), which the next grant pays first. So the
//! balance is the grants' remaining amounts less the debt, and while there is
//! a debt every effective grant is spent.
//!
//! Every change goes through a method here and returns the entries it made,
//! each with the balance after it, so the stored entries always sum to the
//! balance. Time is passed in: a grant becomes effective and expires at its
//! own instants, applied by [`Wallet::settle_due`] (lazily, before any other
//! change, and never twice: a grant leaves the wallet when it expires).
//!
//! Pure: no store, no clock; the server loads a wallet under the customer's
//! lock, applies a change and writes back what changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::money::Nanos;

/// The most one grant or adjustment may be: $100 million. With at most
/// [`MAX_OPEN_GRANTS`] grants a balance stays far inside `i64` nanos.
pub const MAX_GRANT: Nanos = Nanos::from_usd(100_000_000);

/// Grants a wallet may hold open at once.
pub const MAX_OPEN_GRANTS: usize = 1_000;

/// Paid credits were bought; promotional ones were given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    Paid,
    Promotional,
}

impl GrantKind {
    pub const ALL: [GrantKind; 2] = [GrantKind::Paid, GrantKind::Promotional];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Paid => "paid",
            GrantKind::Promotional => "promotional",
        }
    }

    pub fn parse(s: &str) -> Option<GrantKind> {
        GrantKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a grant came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// An administrator granted it (or adjusted the balance up).
    Admin,
    /// The customer bought it.
    TopUp,
    /// The plan's included credits for a period.
    Plan,
    /// Money given back.
    Refund,
}

impl GrantSource {
    pub const ALL: [GrantSource; 4] = [GrantSource::Admin, GrantSource::TopUp, GrantSource::Plan, GrantSource::Refund];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantSource::Admin => "admin",
            GrantSource::TopUp => "top_up",
            GrantSource::Plan => "plan",
            GrantSource::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<GrantSource> {
        GrantSource::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a grant is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantStatus {
    /// Not effective yet: not in the balance.
    Pending,
    /// In the balance with its `remaining`.
    Active,
    /// Expired; what was left went out with an expiry entry.
    Expired,
    /// Voided by an administrator.
    Voided,
}

impl GrantStatus {
    pub const ALL: [GrantStatus; 4] =
        [GrantStatus::Pending, GrantStatus::Active, GrantStatus::Expired, GrantStatus::Voided];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Active => "active",
            GrantStatus::Expired => "expired",
            GrantStatus::Voided => "voided",
        }
    }

    pub fn parse(s: &str) -> Option<GrantStatus> {
        GrantStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the grant can still change the balance.
    pub fn is_open(self) -> bool {
        matches!(self, GrantStatus::Pending | GrantStatus::Active)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub kind: GrantKind,
    pub source: GrantSource,
    pub amount: Nanos,
    /// What is left of `amount`; at most `amount`, never negative.
    pub remaining: Nanos,
    /// Higher spends first.
    pub priority: i64,
    pub effective_at: DateTime<Utc>,
    /// It no longer counts from this instant on.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub status: GrantStatus,
}

impl Grant {
    /// The order grants are spent in: higher priority first, then the one
    /// that expires first (a grant that never expires last), then the
    /// oldest, then by id, so the order is total and the same every time.
    fn spend_order(&self) -> (std::cmp::Reverse<i64>, bool, Option<DateTime<Utc>>, DateTime<Utc>, &str) {
        (std::cmp::Reverse(self.priority), self.expires_at.is_none(), self.expires_at, self.created_at, &self.id)
    }
}

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Grant,
    Debit,
    Expiry,
    Void,
    Refund,
    Adjustment,
}

impl EntryKind {
    pub const ALL: [EntryKind; 6] = [
        EntryKind::Grant,
        EntryKind::Debit,
        EntryKind::Expiry,
        EntryKind::Void,
        EntryKind::Refund,
        EntryKind::Adjustment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Debit => "debit",
            EntryKind::Expiry => "expiry",
            EntryKind::Void => "void",
            EntryKind::Refund => "refund",
            EntryKind::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One change to a balance. Never changed once written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    /// Signed: what the balance moved by.
    pub amount: Nanos,
    pub balance_after: Nanos,
    pub event_id: Option<String>,
    /// The grant it drew from or added; `None` for a debit beyond every
    /// grant (it became debt).
    pub grant_id: Option<String>,
    pub note: Option<String>,
}

/// Why a change to a wallet was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("an amount must be more than $0 and at most {}", MAX_GRANT.display_plain())]
    Amount,
    #[error("`expires_at` must be after `effective_at` and after now")]
    Expiry,
    #[error("a wallet may hold at most {MAX_OPEN_GRANTS} open grants")]
    TooManyGrants,
    #[error("no open grant `{0}` in this wallet")]
    NoSuchGrant(String),
}

/// A customer's open grants and debt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wallet {
    /// Its grants: the open ones (pending or active), and any that closed
    /// during the changes applied since it was loaded, so the store can
    /// write their new status.
    pub grants: Vec<Grant>,
    /// Spent beyond every grant; the next grant pays it first.
    pub debt: Nanos,
}

impl Wallet {
    /// The balance as it stands after the last change: effective grants'
    /// remaining amounts less the debt. Call [`Wallet::settle_due`] (or use
    /// [`Wallet::balance_at`]) first for the balance at an instant.
    pub fn balance(&self) -> Nanos {
        let left = self.grants.iter().filter(|g| g.status == GrantStatus::Active).map(|g| g.remaining).sum::<Nanos>();
        Nanos(left.0.saturating_sub(self.debt.0))
    }

    /// The balance at `now`, grants becoming effective or expiring by then
    /// taken into account, without changing the wallet.
    pub fn balance_at(&self, now: DateTime<Utc>) -> Nanos {
        let mut w = self.clone();
        w.settle_due(now);
        w.balance()
    }

    /// The first instant after `now` at which a grant becomes effective or
    /// expires (the balance changes by itself then).
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.open().flat_map(|g| [Some(g.effective_at), g.expires_at]).flatten().filter(|t| *t > now).min()
    }

    /// The grants still open (pending or active).
    pub fn open(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter().filter(|g| g.status.is_open())
    }

    /// Applies every activation and expiry due by `now`, in time order (at
    /// one instant expiries first: a grant is not counted from its
    /// `expires_at` on). Each writes an entry at its own instant; an expiry
    /// of a grant with nothing left writes none but still closes it.
    pub fn settle_due(&mut self, now: DateTime<Utc>) -> Vec<Entry> {
        let mut entries = Vec::new();
        loop {
            // The earliest due change: (instant, expiry before activation, index).
            let next = self
                .grants
                .iter()
                .enumerate()
                .filter_map(|(i, g)| match (g.status, g.expires_at) {
                    (GrantStatus::Active, Some(t)) if t <= now => Some((t, 0, i)),
                    (GrantStatus::Pending, _) if g.effective_at <= now => Some((g.effective_at, 1, i)),
                    _ => None,
                })
                .min_by_key(|(t, order, i)| (*t, *order, self.grants[*i].spend_order()));
            let Some((at, order, i)) = next else { break };
            if order == 0 {
                let left = std::mem::take(&mut self.grants[i].remaining);
                self.grants[i].status = GrantStatus::Expired;
                if left > Nanos::ZERO {
                    let id = self.grants[i].id.clone();
                    entries.push(self.entry(at, EntryKind::Expiry, Nanos(-left.0), None, Some(&id), None));
                }
            } else {
                entries.push(self.activate(i, at));
            }
        }
        entries
    }

    /// Makes grant `i` effective at `at`: it pays the debt first.
    fn activate(&mut self, i: usize, at: DateTime<Utc>) -> Entry {
        let paid = self.debt.min(self.grants[i].amount);
        self.debt = Nanos(self.debt.0 - paid.0);
        let g = &mut self.grants[i];
        g.status = GrantStatus::Active;
        g.remaining = Nanos(g.amount.0 - paid.0);
        let (id, amount) = (g.id.clone(), g.amount);
        let kind = if g.source == GrantSource::Refund { EntryKind::Refund } else { EntryKind::Grant };
        let note = (paid > Nanos::ZERO).then(|| format!("paid {} of debt", paid.display_plain()));
        self.entry(at, kind, amount, None, Some(&id), note)
    }

    /// Adds a grant at `now` (after [`Wallet::settle_due`]); effective now
    /// unless its `effective_at` is later. Its `remaining` and `status` are
    /// set here.
    pub fn add_grant(&mut self, mut grant: Grant, now: DateTime<Utc>) -> Result<Vec<Entry>, WalletError> {
        if grant.amount <= Nanos::ZERO || grant.amount > MAX_GRANT {
            return Err(WalletError::Amount);
        }
        if grant.expires_at.is_some_and(|t| t <= grant.effective_at || t <= now) {
            return Err(WalletError::Expiry);
        }
        if self.open().count() >= MAX_OPEN_GRANTS {
            return Err(WalletError::TooManyGrants);
        }
        grant.remaining = Nanos::ZERO;
        grant.status = GrantStatus::Pending;
        let effective = grant.effective_at <= now;
        self.grants.push(grant);
        Ok(if effective { vec![self.activate(self.grants.len() - 1, now)] } else { Vec::new() })
    }

    /// Spends `amount` at `at` for `event_id` from the effective grants in
    /// spending order; what they cannot cover becomes debt. One entry per
    /// grant drawn from (and one for the debt). Nothing for a zero amount.
    pub fn debit(&mut self, amount: Nanos, at: DateTime<Utc>, event_id: &str) -> Vec<Entry> {
        self.draw(amount, at, EntryKind::Debit, Some(event_id), None)
    }

    /// Takes `amount` out in spending order, as [`Wallet::debit`] does.
    fn draw(
        &mut self,
        amount: Nanos,
        at: DateTime<Utc>,
        kind: EntryKind,
        event_id: Option<&str>,
        note: Option<&str>,
    ) -> Vec<Entry> {
        let mut left = amount.0.max(0);
        let mut order: Vec<usize> = (0..self.grants.len())
            .filter(|&i| self.grants[i].status == GrantStatus::Active && self.grants[i].remaining > Nanos::ZERO)
            .collect();
        order.sort_by(|&a, &b| self.grants[a].spend_order().cmp(&self.grants[b].spend_order()));
        let mut entries = Vec::new();
        for i in order {
            if left == 0 {
                break;
            }
            let take = left.min(self.grants[i].remaining.0);
            self.grants[i].remaining = Nanos(self.grants[i].remaining.0 - take);
            left -= take;
            let id = self.grants[i].id.clone();
            entries.push(self.entry(at, kind, Nanos(-take), event_id, Some(&id), note.map(str::to_string)));
        }
        if left > 0 {
            self.debt = Nanos(self.debt.0.saturating_add(left));
            entries.push(self.entry(at, kind, Nanos(-left), event_id, None, note.map(str::to_string)));
        }
        entries
    }

    /// Gives back what an event's debits drew (`draws`: the grant each drew
    /// from, `None` for what became debt, and the amount), each part where
    /// it came from: to its grant while that grant is open (effective and
    /// not expired or voided); what went into debt pays the debt back
    /// first; anything else becomes a new refund grant `refund_grant`
    /// (paid, no expiry) so that it is spent like any credit. One `refund`
    /// entry per part.
    pub fn refund(
        &mut self,
        draws: &[(Option<String>, Nanos)],
        at: DateTime<Utc>,
        event_id: &str,
        refund_grant: &str,
    ) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut homeless = Nanos::ZERO;
        // What went into debt pays it back first; then each grant's part.
        let parts = draws.iter().filter(|(g, _)| g.is_none()).chain(draws.iter().filter(|(g, _)| g.is_some()));
        for (grant_id, amount) in parts {
            if *amount <= Nanos::ZERO {
                continue;
            }
            let open = grant_id
                .as_deref()
                .and_then(|id| self.grants.iter().position(|g| g.id == id && g.status == GrantStatus::Active));
            match (open, grant_id) {
                (Some(i), _) => {
                    // Never above what the grant was given; like any
                    // credit, it pays a debt first.
                    let room = self.grants[i].amount.0 - self.grants[i].remaining.0;
                    let back = Nanos(room.min(amount.0));
                    let paid = self.debt.min(back);
                    self.debt = Nanos(self.debt.0 - paid.0);
                    let g = &mut self.grants[i];
                    g.remaining = Nanos(g.remaining.0 + back.0 - paid.0);
                    homeless = Nanos(homeless.0 + amount.0 - back.0);
                    let id = g.id.clone();
                    let note = (paid > Nanos::ZERO).then(|| format!("paid {} of debt", paid.display_plain()));
                    if back > Nanos::ZERO {
                        entries.push(self.entry(at, EntryKind::Refund, back, Some(event_id), Some(&id), note));
                    }
                }
                (None, None) => {
                    let paid = self.debt.min(*amount);
                    self.debt = Nanos(self.debt.0 - paid.0);
                    homeless = Nanos(homeless.0 + amount.0 - paid.0);
                    if paid > Nanos::ZERO {
                        let note = Some("debt paid back".to_string());
                        entries.push(self.entry(at, EntryKind::Refund, paid, Some(event_id), None, note));
                    }
                }
                (None, Some(_)) => homeless = Nanos(homeless.0 + amount.0),
            }
        }
        if homeless > Nanos::ZERO {
            self.grants.push(Grant {
                id: refund_grant.to_string(),
                kind: GrantKind::Paid,
                source: GrantSource::Refund,
                amount: homeless,
                remaining: Nanos::ZERO,
                priority: 0,
                effective_at: at,
                expires_at: None,
                created_at: at,
                status: GrantStatus::Pending,
            });
            let mut e = self.activate(self.grants.len() - 1, at);
            e.event_id = Some(event_id.to_string());
            entries.push(e);
        }
        entries
    }

    /// Voids an open grant: what is left of it leaves the balance.
    pub fn void(&mut self, grant_id: &str, at: DateTime<Utc>, reason: &str) -> Result<Vec<Entry>, WalletError> {
        let g = self
            .grants
            .iter_mut()
            .find(|g| g.id == grant_id && g.status.is_open())
            .ok_or_else(|| WalletError::NoSuchGrant(grant_id.to_string()))?;
        let amount = if g.status == GrantStatus::Active { Nanos(-g.remaining.0) } else { Nanos::ZERO };
        g.remaining = Nanos::ZERO;
        g.status = GrantStatus::Voided;
        Ok(vec![self.entry(at, EntryKind::Void, amount, None, Some(grant_id), Some(reason.to_string()))])
    }

    /// Moves the balance by `amount` (signed) with a reason. Down: drawn
    /// in spending order like a debit (beyond the grants it is debt). Up:
    /// pays the debt first and the rest becomes a paid grant `up_grant`
    /// (source admin, priority 0, no expiry) so it is spent like any other.
    pub fn adjust(
        &mut self,
        amount: Nanos,
        at: DateTime<Utc>,
        reason: &str,
        up_grant: &str,
    ) -> Result<Vec<Entry>, WalletError> {
        if amount == Nanos::ZERO || amount.0.unsigned_abs() > MAX_GRANT.0.unsigned_abs() {
            return Err(WalletError::Amount);
        }
        if amount < Nanos::ZERO {
            return Ok(self.draw(Nanos(-amount.0), at, EntryKind::Adjustment, None, Some(reason)));
        }
        if self.open().count() >= MAX_OPEN_GRANTS {
            return Err(WalletError::TooManyGrants);
        }
        self.grants.push(Grant {
            id: up_grant.to_string(),
            kind: GrantKind::Paid,
            source: GrantSource::Admin,
            amount,
            remaining: Nanos::ZERO,
            priority: 0,
            effective_at: at,
            expires_at: None,
            created_at: at,
            status: GrantStatus::Pending,
        });
        let mut entry = self.activate(self.grants.len() - 1, at);
        entry.kind = EntryKind::Adjustment;
        entry.note = Some(reason.to_string());
        Ok(vec![entry])
    }

    /// An entry for a change already applied to the wallet.
    fn entry(
        &self,
        at: DateTime<Utc>,
        kind: EntryKind,
        amount: Nanos,
        event_id: Option<&str>,
        grant_id: Option<&str>,
        note: Option<String>,
    ) -> Entry {
        Entry {
            at,
            kind,
            amount,
            balance_after: self.balance(),
            event_id: event_id.map(str::to_string),
            grant_id: grant_id.map(str::to_string),
            note,
        }
    }
}

/// When a customer is warned that credits run low: below an amount, or
/// below a percent of their last top-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowBalance {
    Amount(Nanos),
    PercentOfLastTopUp(u8),
}

impl LowBalance {
    /// `"5"` or `"5.50"` (USD), or `"20%"` (of the last top-up, 1 to 100).
    pub fn parse(raw: &str) -> Result<LowBalance, String> {
        let raw = raw.trim();
        if let Some(p) = raw.strip_suffix('%') {
            return p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .map(LowBalance::PercentOfLastTopUp)
                .ok_or_else(|| format!("`{raw}`: a percent from 1% to 100% of the last top-up"));
        }
        match Nanos::parse_usd(raw) {
            Ok(n) if n <= MAX_GRANT => Ok(LowBalance::Amount(n)),
            _ => {
                Err(format!("`{raw}`: an amount of USD such as \"5\", or a percent of the last top-up such as \"20%\""))
            }
        }
    }

    /// The amount it stands for, given the last top-up (none yet: no
    /// threshold for a percent).
    pub fn resolve(self, last_top_up: Option<Nanos>) -> Option<Nanos> {
        match self {
            LowBalance::Amount(n) => Some(n),
            LowBalance::PercentOfLastTopUp(p) => last_top_up.map(|t| Nanos(t.0 / 100 * i64::from(p))),
        }
    }
}

/// When `available` runs out if spending goes on as it went over the last
/// `window` (`spent` in it): `now` when nothing is available, `None` when
/// nothing was spent.
pub fn runs_out_at(
    available: Nanos,
    spent: Nanos,
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if available <= Nanos::ZERO {
        return Some(now);
    }
    if spent <= Nanos::ZERO || window <= chrono::Duration::zero() {
        return None;
    }
    let ms = i128::from(window.num_milliseconds()) * i128::from(available.0) / i128::from(spent.0);
    // Beyond a century is "not in sight".
    let ms = i64::try_from(ms).ok().filter(|m| *m < 100 * 365 * 86_400_000)?;
    Some(now + chrono::Duration::milliseconds(ms))
}

/// The balance at the end of each day from `from`'s day to `to`'s: `before`
/// (the balance at `from`), then each entry's `balance_after` in the order
/// written. `entries` are `(at, balance_after)`, oldest first.
pub fn daily_balance(
    before: Nanos,
    entries: &[(DateTime<Utc>, Nanos)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Nanos)> {
    let mut out = Vec::new();
    let mut balance = before;
    let mut next = entries.iter().peekable();
    let mut day = from;
    while day <= to {
        let end = day + chrono::Duration::days(1);
        while let Some((_, after)) = next.next_if(|(at, _)| *at < end) {
            balance = *after;
        }
        out.push((day, balance));
        day = end;
    }
    out
}

#[cfg(test)]
mod tests;
