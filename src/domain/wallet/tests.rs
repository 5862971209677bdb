use chrono::{Duration, TimeZone};
use proptest::prelude::*;

use super::*;

fn t(mins: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::minutes(mins)
}

fn usd(cents: i64) -> Nanos {
    Nanos(cents * 10_000_000)
}

fn grant(id: &str, cents: i64, priority: i64, effective: i64, expires: Option<i64>, created: i64) -> Grant {
    Grant {
        id: id.into(),
        kind: GrantKind::Paid,
        source: GrantSource::Admin,
        amount: usd(cents),
        remaining: Nanos::ZERO,
        priority,
        effective_at: t(effective),
        expires_at: expires.map(t),
        created_at: t(created),
        status: GrantStatus::Pending,
    }
}

fn draws(entries: &[Entry]) -> Vec<(Option<&str>, i64)> {
    entries.iter().map(|e| (e.grant_id.as_deref(), e.amount.0 / 10_000_000)).collect()
}

/// Higher priority first, then the earliest expiry (never-expiring last),
/// then the oldest, then the id.
#[test]
fn spending_order_is_priority_then_expiry_then_age() {
    // (grants, cents spent, (grant drawn from, cents) in order)
    type Case<'a> = (&'a [Grant], i64, &'a [(Option<&'a str>, i64)]);
    let cases: &[Case] = &[
        (
            &[grant("a", 100, 0, 0, None, 0), grant("b", 100, 1, 0, None, 1)],
            150,
            &[(Some("b"), -100), (Some("a"), -50)],
        ),
        (
            &[grant("a", 100, 0, 0, None, 0), grant("b", 100, 0, 0, Some(500), 1)],
            150,
            &[(Some("b"), -100), (Some("a"), -50)],
        ),
        (&[grant("a", 100, 0, 0, Some(900), 0), grant("b", 100, 0, 0, Some(500), 1)], 50, &[(Some("b"), -50)]),
        (
            &[grant("b", 100, 0, 0, None, 0), grant("a", 100, 0, 0, None, 1)],
            120,
            &[(Some("b"), -100), (Some("a"), -20)],
        ),
        (
            &[grant("b", 100, 0, 0, None, 0), grant("a", 100, 0, 0, None, 0)],
            120,
            &[(Some("a"), -100), (Some("b"), -20)],
        ),
        // Beyond every grant: debt, named by no grant.
        (&[grant("a", 100, 0, 0, None, 0)], 130, &[(Some("a"), -100), (None, -30)]),
        (&[], 5, &[(None, -5)]),
        (&[grant("a", 100, 0, 0, None, 0)], 0, &[]),
    ];
    for (grants, cost, want) in cases {
        let mut w = Wallet::default();
        for g in grants.iter() {
            w.add_grant(g.clone(), t(2)).unwrap();
        }
        let got = w.debit(usd(*cost), t(3), "ev");
        assert_eq!(draws(&got), want.to_vec(), "{grants:?} spending {cost}");
        assert!(got.iter().all(|e| e.event_id.as_deref() == Some("ev") && e.kind == EntryKind::Debit));
    }
}

/// A grant counts from its `effective_at` and not from its `expires_at`,
/// whatever is left leaves with one expiry entry at its own instant, and
/// settling again changes nothing.
#[test]
fn expiry_is_at_its_instant_and_once() {
    let mut w = Wallet::default();
    w.add_grant(grant("promo", 500, 0, 10, Some(60), 0), t(0)).unwrap();
    assert_eq!(w.balance_at(t(9)), Nanos::ZERO);
    assert_eq!(w.balance_at(t(10)), usd(500));
    assert_eq!(w.balance_at(t(59)), usd(500));
    assert_eq!(w.balance_at(t(60)), Nanos::ZERO);
    assert_eq!(w.next_change(t(0)), Some(t(10)));
    assert!(w.settle_due(t(9)).is_empty());
    let activated = w.settle_due(t(30));
    assert_eq!((activated.len(), activated[0].at, activated[0].kind), (1, t(10), EntryKind::Grant));
    w.debit(usd(200), t(31), "e1");
    let expired = w.settle_due(t(120));
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].at, expired[0].kind, expired[0].amount), (t(60), EntryKind::Expiry, Nanos(-usd(300).0)));
    assert_eq!(w.balance(), Nanos::ZERO);
    assert_eq!(w.grants[0].status, GrantStatus::Expired);
    assert_eq!(w.open().count(), 0);
    assert!(w.settle_due(t(240)).is_empty());
}

/// A negative balance is paid by the next grant before anything else; an
/// expiry afterwards takes only what the grant had left.
#[test]
fn the_next_grant_pays_the_debt_first() {
    let mut w = Wallet::default();
    w.debit(usd(30), t(1), "e1");
    assert_eq!(w.balance(), Nanos(-usd(30).0));
    let e = w.add_grant(grant("g", 100, 0, 0, Some(50), 2), t(2)).unwrap();
    assert_eq!(e[0].amount, usd(100));
    assert_eq!(e[0].balance_after, usd(70));
    assert_eq!(e[0].note.as_deref(), Some("paid $0.30 of debt"));
    assert_eq!(w.grants[0].remaining, usd(70));
    let x = w.settle_due(t(50));
    assert_eq!(x[0].amount, Nanos(-usd(70).0));
    assert_eq!(w.balance(), Nanos::ZERO);
}

#[test]
fn voids_and_adjustments() {
    let mut w = Wallet::default();
    w.add_grant(grant("g", 100, 0, 0, None, 0), t(0)).unwrap();
    w.add_grant(grant("later", 100, 0, 100, None, 0), t(0)).unwrap();
    w.debit(usd(40), t(1), "e1");
    let v = w.void("g", t(2), "mistake").unwrap();
    assert_eq!((v[0].amount, v[0].balance_after), (Nanos(-usd(60).0), Nanos::ZERO));
    // A grant not yet effective leaves without moving the balance.
    assert_eq!(w.void("later", t(3), "no").unwrap()[0].amount, Nanos::ZERO);
    assert_eq!(w.void("g", t(4), "again"), Err(WalletError::NoSuchGrant("g".into())));
    let down = w.adjust(Nanos(-usd(25).0), t(5), "goodwill reversed", "adj1").unwrap();
    assert_eq!(draws(&down), vec![(None, -25)]);
    let up = w.adjust(usd(100), t(6), "credit", "adj2").unwrap();
    assert_eq!((up[0].kind, up[0].amount, up[0].balance_after), (EntryKind::Adjustment, usd(100), usd(75)));
    assert_eq!(w.adjust(Nanos::ZERO, t(7), "nothing", "adj3"), Err(WalletError::Amount));
}

#[test]
fn bad_grants_are_refused() {
    let mut w = Wallet::default();
    let cases = [
        (grant("zero", 0, 0, 0, None, 0), WalletError::Amount),
        (grant("neg", -5, 0, 0, None, 0), WalletError::Amount),
        (Grant { amount: Nanos(MAX_GRANT.0 + 1), ..grant("big", 1, 0, 0, None, 0) }, WalletError::Amount),
        (grant("backwards", 100, 0, 10, Some(10), 0), WalletError::Expiry),
        (grant("past", 100, 0, 0, Some(5), 0), WalletError::Expiry),
    ];
    for (g, want) in cases {
        assert_eq!(w.add_grant(g.clone(), t(5)), Err(want), "{}", g.id);
    }
    assert_eq!(w, Wallet::default());
}

#[derive(Clone, Debug)]
enum Op {
    Grant {
        cents: i64,
        priority: i64,
        starts_in: i64,
        lasts: Option<i64>,
    },
    Debit {
        cents: i64,
    },
    Void {
        which: usize,
    },
    Adjust {
        cents: i64,
    },
    Wait {
        mins: i64,
    },
    /// Refunds the last debit not refunded yet.
    Refund,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..10_000i64, -2..3i64, 0..30i64, proptest::option::of(1..60i64))
            .prop_map(|(cents, priority, starts_in, lasts)| Op::Grant { cents, priority, starts_in, lasts }),
        (0..5_000i64).prop_map(|cents| Op::Debit { cents }),
        (0..8usize).prop_map(|which| Op::Void { which }),
        (-3_000..3_000i64).prop_map(|cents| Op::Adjust { cents }),
        (0..40i64).prop_map(|mins| Op::Wait { mins }),
        Just(Op::Refund),
    ]
}

proptest! {
    /// Whatever happens: every entry's `balance_after` is the sum of the
    /// entries so far and the wallet's balance; a grant never has more
    /// left than it was given, nor less than nothing; while there is debt no
    /// effective grant has anything left; and each debit's entries add up
    /// to the amount spent.
    #[test]
    fn entries_always_sum_to_the_balance(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = Wallet::default();
        let mut sum = 0i64;
        let mut now = 0i64;
        let mut next_id = 0;
        let mut last_debit: Option<Vec<(Option<String>, Nanos)>> = None;
        for op in ops {
            let mut entries = w.settle_due(t(now));
            match op {
                Op::Grant { cents, priority, starts_in, lasts } => {
                    next_id += 1;
                    let g = grant(&format!("g{next_id}"), cents, priority, now + starts_in, lasts.map(|l| now + starts_in + l), now);
                    entries.extend(w.add_grant(g, t(now)).unwrap());
                }
                Op::Debit { cents } => {
                    let e = w.debit(usd(cents), t(now), "ev");
                    prop_assert_eq!(e.iter().map(|e| -e.amount.0).sum::<i64>(), usd(cents).0);
                    last_debit = Some(e.iter().map(|e| (e.grant_id.clone(), Nanos(-e.amount.0))).collect());
                    entries.extend(e);
                }
                Op::Void { which } => {
                    let id = w.open().nth(which).map(|g| g.id.clone());
                    if let Some(id) = id {
                        entries.extend(w.void(&id, t(now), "test").unwrap());
                    }
                }
                Op::Adjust { cents } => {
                    next_id += 1;
                    if let Ok(e) = w.adjust(usd(cents), t(now), "test", &format!("g{next_id}")) {
                        entries.extend(e);
                    }
                }
                Op::Wait { mins } => now += mins,
                Op::Refund => {
                    if let Some(d) = last_debit.take() {
                        next_id += 1;
                        let e = w.refund(&d, t(now), "ev", &format!("g{next_id}"));
                        // Everything the debit took comes back.
                        let taken: i64 = d.iter().map(|(_, a)| a.0).sum();
                        prop_assert_eq!(e.iter().map(|e| e.amount.0).sum::<i64>(), taken);
                        entries.extend(e);
                    }
                }
            }
            for e in &entries {
                sum += e.amount.0;
                prop_assert_eq!(e.balance_after.0, sum, "{:?}", e);
            }
            prop_assert_eq!(w.balance().0, sum);
            for g in w.open() {
                prop_assert!(g.remaining >= Nanos::ZERO && g.remaining <= g.amount, "{:?}", g);
                if w.debt > Nanos::ZERO && g.status == GrantStatus::Active {
                    prop_assert_eq!(g.remaining, Nanos::ZERO);
                }
            }
            prop_assert_eq!(w.balance_at(t(now + 1_000)), { let mut c = w.clone(); c.settle_due(t(now + 1_000)); c.balance() });
        }
    }
}

#[test]
fn runs_out_at_the_recent_rate() {
    let week = Duration::days(7);
    let cases = [
        // (available, spent in the week, days until it runs out)
        (usd(700), usd(700), Some(7 * 24 * 60)),
        (usd(100), usd(700), Some(24 * 60)),
        (usd(0), usd(700), Some(0)),
        (Nanos(-5), usd(0), Some(0)),
        (usd(100), usd(0), None),
        (Nanos(i64::MAX), Nanos(1), None),
    ];
    for (available, spent, mins) in cases {
        assert_eq!(runs_out_at(available, spent, week, t(0)), mins.map(t), "{available:?} {spent:?}");
    }
}

#[test]
fn daily_balance_takes_each_days_last_entry() {
    let entries = [(t(60), usd(500)), (t(120), usd(400)), (t(24 * 60 + 5), usd(300)), (t(3 * 24 * 60), usd(900))];
    let days = daily_balance(usd(100), &entries, t(0), t(3 * 24 * 60 + 10));
    let got: Vec<i64> = days.iter().map(|(_, b)| b.0 / 10_000_000).collect();
    assert_eq!(got, vec![400, 300, 300, 900]);
    assert_eq!(days[1].0, t(24 * 60));
    assert_eq!(daily_balance(usd(100), &[], t(0), t(10)), vec![(t(0), usd(100))]);
}

/// A refund goes back where the money came from: to a grant still open,
/// to the debt it made, and into a new refund grant for a grant that has
/// since expired; the event's debits and its refund net to zero.
#[test]
fn a_refund_goes_back_where_it_came_from() {
    let mut w = Wallet::default();
    w.add_grant(grant("promo", 100, 1, 0, Some(60), 0), t(0)).unwrap();
    w.add_grant(grant("paid", 100, 0, 0, None, 0), t(0)).unwrap();
    let debits = w.debit(usd(250), t(1), "ev");
    assert_eq!(draws(&debits), vec![(Some("promo"), -100), (Some("paid"), -100), (None, -50)]);
    w.settle_due(t(60)); // the promotional grant lapses (nothing left in it)
    let back: Vec<(Option<String>, Nanos)> = debits.iter().map(|e| (e.grant_id.clone(), Nanos(-e.amount.0))).collect();
    let refunds = w.refund(&back, t(61), "ev", "refund-1");
    assert_eq!(draws(&refunds), vec![(None, 50), (Some("paid"), 100), (Some("refund-1"), 100)]);
    assert!(refunds.iter().all(|e| e.kind == EntryKind::Refund && e.event_id.as_deref() == Some("ev")));
    assert_eq!(w.balance(), usd(200));
    assert_eq!(w.debt, Nanos::ZERO);
    let g = w.grants.iter().find(|g| g.id == "refund-1").unwrap();
    assert_eq!((g.source, g.amount, g.remaining), (GrantSource::Refund, usd(100), usd(100)));
}

#[test]
fn low_balance_thresholds_parse_and_resolve() {
    let cases: &[(&str, Option<LowBalance>)] = &[
        ("5", Some(LowBalance::Amount(usd(500)))),
        (" 2.5 ", Some(LowBalance::Amount(usd(250)))),
        ("0", Some(LowBalance::Amount(Nanos::ZERO))),
        ("20%", Some(LowBalance::PercentOfLastTopUp(20))),
        ("100%", Some(LowBalance::PercentOfLastTopUp(100))),
        ("0%", None),
        ("101%", None),
        ("-5", None),
        ("lots", None),
        ("200000000", None),
    ];
    for (raw, want) in cases {
        assert_eq!(LowBalance::parse(raw).ok(), *want, "{raw}");
    }
    assert_eq!(LowBalance::PercentOfLastTopUp(20).resolve(Some(usd(5000))), Some(usd(1000)));
    assert_eq!(LowBalance::PercentOfLastTopUp(20).resolve(None), None);
    assert_eq!(LowBalance::Amount(usd(3)).resolve(None), Some(usd(3)));
}
