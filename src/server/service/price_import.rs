//! Importing a price map (LiteLLM's format): each entry whose prices differ
//! from the version in force becomes a new version from `effective_from`,
//! so history is kept and events already recorded keep their price.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::Engine;
use super::audit;
use crate::domain::litellm::{self, ImportChange, ImportReport, ImportSkipped};
use crate::domain::pricing::{ANY_MODEL, Catalog, PriceVersion};
use crate::server::error::AppResult;
use crate::server::store::{catalog, events};

impl Engine {
    /// Reads `text` as a LiteLLM price map and adds a version from
    /// `effective_from` for every entry whose prices differ from the one in
    /// force then. A dry run reports the same and writes nothing.
    pub async fn import_prices(
        &self,
        text: &str,
        effective_from: DateTime<Utc>,
        dry_run: bool,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<ImportReport> {
        let map = litellm::parse(text).map_err(crate::server::error::AppError::Invalid)?;
        let mut tx = self.store.begin().await?;
        let existing = Catalog::new(catalog::price_versions(&mut tx).await?);
        let mut report = ImportReport {
            dry_run,
            effective_from,
            created: 0,
            unchanged: 0,
            skipped: map.skipped.into_iter().map(|(key, reason)| ImportSkipped { key, reason }).collect(),
            unsupported_fields: map.unsupported_fields,
            changes: Vec::new(),
            repriced_events: 0,
        };
        let mut created: Vec<PriceVersion> = Vec::new();
        for e in map.entries {
            let current = existing.exact_at(&e.provider, &e.model, effective_from);
            if current.is_some_and(|c| c.rates == e.rates && c.max_output_tokens == e.max_output_tokens) {
                report.unchanged += 1;
                continue;
            }
            if current.is_some_and(|c| c.effective_from == effective_from) {
                report.skipped.push(ImportSkipped {
                    key: e.key,
                    reason: format!("a different version from {} already exists", effective_from.to_rfc3339()),
                });
                continue;
            }
            report.changes.push(ImportChange {
                key: e.key.clone(),
                provider: e.provider.as_str().to_string(),
                model: e.model.clone(),
                kind: if current.is_some() { "changed" } else { "new" }.to_string(),
                before: current.map(|c| c.rates.describe()),
                after: e.rates.describe(),
            });
            let mut v = PriceVersion {
                id: 0,
                provider: e.provider,
                model: e.model,
                effective_from,
                rates: e.rates,
                description: format!("imported from LiteLLM ({})", e.key),
                max_output_tokens: e.max_output_tokens,
            };
            if !dry_run {
                v.id = catalog::insert_price_row(&mut tx, &v, Some(actor), now).await?;
            }
            created.push(v);
        }
        report.created = created.len();
        if dry_run || created.is_empty() {
            return Ok(report);
        }
        catalog::bump_revision(&mut tx).await?;
        // Re-price what was recorded unpriced, for the versions that could
        // price it (asking only where there is something to price).
        let unpriced: BTreeSet<(String, String)> = events::unpriced_models(&mut tx)
            .await?
            .into_iter()
            .map(|(p, m, _, _)| (p, m.unwrap_or_default()))
            .collect();
        let providers: BTreeSet<&str> = unpriced.iter().map(|(p, _)| p.as_str()).collect();
        for v in &created {
            let relevant = if v.model == ANY_MODEL {
                providers.contains(v.provider.as_str())
            } else {
                unpriced.contains(&(v.provider.as_str().to_string(), v.model.clone()))
            };
            if relevant {
                report.repriced_events +=
                    super::repricing::reprice_for(&mut tx, &self.catalog, v, actor, now).await?.events;
            }
        }
        audit::record(
            &mut tx,
            actor,
            "price.import",
            ("price", "litellm"),
            None::<&()>,
            Some(&serde_json::json!({
                "effective_from": effective_from.to_rfc3339(),
                "created": report.created,
                "unchanged": report.unchanged,
                "skipped": report.skipped.len(),
                "models": report.changes.iter().map(|c| format!("{}/{}", c.provider, c.model)).collect::<Vec<_>>(),
            })),
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(created = report.created, unchanged = report.unchanged, "imported a price map");
        Ok(report)
    }
}
