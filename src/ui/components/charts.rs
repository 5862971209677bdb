//! Charts: pure builders of charming options (data in, `Chart` out), and the
//! component that draws one in the browser.
//!
//! Builders run on both sides and are unit-tested as data; drawing happens
//! only after hydration (charming's `wasm` renderer calls the global
//! `echarts` that the shell loads from our own origin).

use charming::Chart;
use charming::component::{Axis, Grid};
use charming::element::{AxisType, Tooltip, Trigger};
use charming::series::Line;
use leptos::prelude::*;

/// A line of monthly cost in USD. `labels` and `usd` are aligned.
pub fn cost_trend_chart(labels: &[String], usd: &[f64]) -> Chart {
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("4%").bottom("3%").top("8%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Category).data(labels.to_vec()))
        .y_axis(Axis::new().type_(AxisType::Value).name("USD"))
        .series(Line::new().name("Cost").smooth(0.3).data(usd.to_vec()))
}

/// Draws `chart` into a div once hydrated, and again whenever it changes.
#[component]
pub fn EChart(
    /// DOM id of the chart's container (unique on the page).
    id: &'static str,
    chart: Signal<Chart>,
    #[prop(default = 300)] height: u32,
    /// Accessible description of what the chart shows.
    label: String,
) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let c = chart.get();
        if let Some(el) = document().get_element_by_id(id) {
            let width = el.client_width().max(280) as u32;
            if let Err(e) = charming::WasmRenderer::new(width, height).render(id, &c) {
                leptos::logging::warn!("chart {id} failed to render: {e:?}");
            }
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = chart;
    view! { <div id=id role="img" aria-label=label class="w-full" style=format!("height: {height}px")></div> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_chart_carries_labels_and_values() {
        let labels = vec!["2026-10".to_string(), "2026-11".to_string()];
        let v = serde_json::to_value(cost_trend_chart(&labels, &[1.5, 2.25])).unwrap();
        assert_eq!(v["xAxis"]["data"], serde_json::json!(["2026-10", "2026-11"]));
        assert_eq!(v["series"][0]["type"], "line");
        assert_eq!(v["series"][0]["data"], serde_json::json!([1.5, 2.25]));
    }
}
