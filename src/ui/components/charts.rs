//! Charts: pure builders of charming options (data in, `Chart` out), and the
//! component that draws one in the browser.
//!
//! Builders run on both sides and are unit-tested as data. Drawing happens
//! only after hydration: one ECharts instance per chart, options replaced
//! wholesale on every change (so a series can disappear), resized with the
//! window, with hover and click reported back to Leptos.

use charming::Chart;
use charming::component::{Axis, Grid, Legend, LegendType};
use charming::element::{
    AxisType, LineStyle, LineStyleType, MarkPoint, MarkPointData, MarkPointDataType, Tooltip, Trigger,
};
use charming::series::{Bar, Line, Pie, Scatter};
use leptos::prelude::*;

use crate::api::dashboard::{Series, TrendData};

/// Colors shared by the charts and the tables beside them.
pub const PALETTE: [&str; 10] =
    ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];

/// A line of monthly cost in USD. `labels` and `usd` are aligned.
pub fn cost_trend_chart(labels: &[String], usd: &[f64]) -> Chart {
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("4%").bottom("3%").top("8%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Category).data(labels.to_vec()))
        .y_axis(Axis::new().type_(AxisType::Value).name("USD"))
        .series(Line::new().name("Cost").smooth(0.3).data(usd.to_vec()))
}

/// A prepaid balance day by day: a stepped line in USD, so a grant or a
/// day's spending reads as a step. `labels` and `usd` are aligned.
pub fn balance_chart(labels: &[String], usd: &[f64]) -> Chart {
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("4%").bottom("3%").top("8%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Category).data(labels.to_vec()))
        .y_axis(Axis::new().type_(AxisType::Value).name("USD"))
        .series(Line::new().name("Balance").step(charming::element::Step::End).data(usd.to_vec()))
}

/// A donut of cost by provider: `(name, usd)` slices. Slices carry no
/// labels on the canvas (small slices' labels stack on top of each other at
/// any width); the legend beside the chart names every slice with its
/// amount, and hovering a slice shows its tooltip.
pub fn cost_pie_chart(slices: &[(String, f64)]) -> Chart {
    Chart::new()
        .color(PALETTE.iter().map(|c| charming::element::Color::from(*c)).collect::<Vec<_>>())
        .tooltip(Tooltip::new().trigger(Trigger::Item).formatter("{b}: ${c} ({d}%)"))
        .series(
            Pie::new()
                .name("Cost by provider")
                .radius(vec!["45%", "72%"])
                .avoid_label_overlap(true)
                .label(charming::element::Label::new().show(false))
                .label_line(charming::element::LabelLine::new().show(false))
                .data(slices.iter().map(|(n, v)| (*v, n.clone())).collect::<Vec<_>>()),
        )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cost,
    Calls,
    Tokens,
}

impl Metric {
    fn of(self, s: &Series) -> Vec<f64> {
        match self {
            // Cents are enough for a line (the tables beside it are exact).
            Metric::Cost => s.cost_nanos.iter().map(|n| (*n as f64 / 1e7).round() / 100.0).collect(),
            Metric::Calls => s.calls.iter().map(|n| *n as f64).collect(),
            Metric::Tokens => s.tokens.iter().map(|n| *n as f64).collect(),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::Cost => "Cost (USD)",
            Metric::Calls => "Calls",
            Metric::Tokens => "Tokens",
        }
    }
}

/// Total and per-provider lines of `metric`, the peak month marked, and the
/// current month's projection dashed (from last month to the projected
/// month-end value).
pub fn usage_trend_chart(t: &TrendData, metric: Metric) -> Chart {
    let total = metric.of(&t.total);
    let n = total.len();
    let mut chart = Chart::new()
        .color(PALETTE.iter().map(|c| charming::element::Color::from(*c)).collect::<Vec<_>>())
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new().type_(LegendType::Scroll).bottom("0"))
        .grid(Grid::new().left("3%").right("4%").bottom("14%").top("10%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Category).data(t.periods.clone()))
        .y_axis(Axis::new().type_(AxisType::Value).name(metric.label()))
        .series(
            Line::new()
                .name("Total")
                .line_style(LineStyle::new().width(3))
                .mark_point(
                    MarkPoint::new().data(vec![MarkPointData::new().type_(MarkPointDataType::Max).name("Peak")]),
                )
                .data(total.clone()),
        );
    for (_, name, s) in &t.by_provider {
        chart =
            chart.series(Line::new().name(name.as_str()).line_style(LineStyle::new().width(1.5)).data(metric.of(s)));
    }
    if n > 0 {
        let current = total[n - 1];
        let projected = match metric {
            Metric::Cost => (t.projected_cost_nanos as f64 / 1e7).round() / 100.0,
            _ => {
                let cost_now = *t.total.cost_nanos.last().unwrap_or(&0) as f64;
                let factor = if cost_now > 0.0 { t.projected_cost_nanos as f64 / cost_now } else { 1.0 };
                current * factor
            }
        };
        let mut points: Vec<Option<f64>> = vec![None; n];
        if n >= 2 {
            points[n - 2] = Some(total[n - 2]);
        }
        points[n - 1] = Some(projected);
        chart = chart.series(
            Line::new()
                .name("Projection")
                .line_style(LineStyle::new().type_(LineStyleType::Dashed).width(2))
                .data(points),
        );
    }
    chart
}

/// Each model a point: its median response time across (ms), its cost per
/// call up (USD), so the cheap-and-fast models sit in the bottom left.
/// `points`: (name, median ms, USD per call).
pub fn cost_latency_chart(points: &[(String, f64, f64)]) -> Chart {
    Chart::new()
        .color(PALETTE.iter().map(|c| charming::element::Color::from(*c)).collect::<Vec<_>>())
        .tooltip(Tooltip::new().trigger(Trigger::Item).formatter("{b}: {c}"))
        .grid(Grid::new().left("3%").right("4%").bottom("10%").top("12%").contain_label(true))
        .x_axis(
            Axis::new()
                .type_(AxisType::Value)
                .name("median response time (ms)")
                .name_location(charming::element::NameLocation::Middle)
                .name_gap(28),
        )
        .y_axis(Axis::new().type_(AxisType::Value).name("USD per call"))
        .series(
            Scatter::new()
                .name("Models")
                .symbol_size(14)
                .data(points.iter().map(|(n, x, y)| (vec![*x, *y], n.clone())).collect::<Vec<_>>()),
        )
}

/// How each model's response times spread: per range (`ranges`), the
/// percent of the model's timed calls, one bar series per model.
pub fn latency_spread_chart(ranges: &[&str], models: &[(String, Vec<f64>)]) -> Chart {
    let mut chart = Chart::new()
        .color(PALETTE.iter().map(|c| charming::element::Color::from(*c)).collect::<Vec<_>>())
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new().type_(LegendType::Scroll).bottom("0"))
        .grid(Grid::new().left("3%").right("4%").bottom("14%").top("10%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Category).data(ranges.to_vec()))
        .y_axis(Axis::new().type_(AxisType::Value).name("% of calls"));
    for (name, shares) in models {
        chart = chart.series(Bar::new().name(name.as_str()).data(shares.clone()));
    }
    chart
}

/// What the user did on a chart: the name of the item (slice or series).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChartEvent {
    Hover(Option<String>),
    Click(String),
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
    /// The id of the table holding the chart's figures, its text
    /// alternative (`aria-describedby`).
    table: &'static str,
    /// Hover and click on items.
    #[prop(optional)]
    on_event: Option<Callback<ChartEvent>>,
) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let c = chart.get();
        browser::draw_when_attached(id, c, on_event, 40);
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (chart, on_event);
    // Only pages with a chart load ECharts: the browser starts fetching it
    // while the page loads, and the first chart drawn runs it.
    view! {
        <link rel="preload" href={ECHARTS_JS} r#as="script"/>
        <div id=id role="img" aria-label=label aria-describedby=table class="w-full" style=format!("height: {height}px")></div>
    }
}

/// The vendored ECharts (built by `scripts/setup.sh` from
/// `style/echarts.js`), loaded by the first chart a page draws.
pub const ECHARTS_JS: &str = "/vendor/echarts.min.js";

#[cfg(feature = "hydrate")]
mod browser {
    //! The ECharts instances of the page, kept by element id.

    use std::cell::RefCell;
    use std::collections::HashMap;

    use charming::Chart;
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;

    use super::ChartEvent;

    #[wasm_bindgen]
    extern "C" {
        type Instance;
        #[wasm_bindgen(js_namespace = echarts, js_name = init)]
        fn echarts_init(el: &web_sys::Element) -> Instance;
        #[wasm_bindgen(method, js_name = setOption)]
        fn set_option(this: &Instance, option: JsValue, not_merge: bool);
        #[wasm_bindgen(method)]
        fn on(this: &Instance, event: &str, handler: &js_sys::Function);
        #[wasm_bindgen(method)]
        fn resize(this: &Instance);
        #[wasm_bindgen(method, js_name = isDisposed)]
        fn is_disposed(this: &Instance) -> bool;
    }

    thread_local! {
        static CHARTS: RefCell<HashMap<&'static str, (web_sys::Element, Instance)>> = RefCell::new(HashMap::new());
    }

    fn name_of(params: &JsValue) -> Option<String> {
        js_sys::Reflect::get(params, &"name".into()).ok().and_then(|v| v.as_string())
    }

    /// Callbacks waiting for ECharts to load; `None` when no load is under
    /// way.
    type Waiting = Option<Vec<Box<dyn FnOnce()>>>;

    thread_local! {
        static WAITING: RefCell<Waiting> = const { RefCell::new(None) };
    }

    fn echarts_loaded() -> bool {
        js_sys::Reflect::get(&window(), &"echarts".into()).is_ok_and(|v| !v.is_undefined())
    }

    /// Runs `then` once ECharts is loaded, adding its script to the page on
    /// first need (pages without a chart never load it). If the script
    /// fails to load, what waited is dropped and the next draw tries again.
    fn with_echarts(then: impl FnOnce() + 'static) {
        if echarts_loaded() {
            return then();
        }
        let first = WAITING.with(|w| {
            let mut w = w.borrow_mut();
            let first = w.is_none();
            w.get_or_insert_with(Vec::new).push(Box::new(then));
            first
        });
        if !first {
            return;
        }
        let (Ok(script), Some(body)) = (document().create_element("script"), document().body()) else { return };
        let _ = script.set_attribute("src", super::ECHARTS_JS);
        let loaded = Closure::once(|| {
            for f in WAITING.with(|w| w.borrow_mut().take()).unwrap_or_default() {
                f();
            }
        });
        let failed = {
            let script = script.clone();
            Closure::once(move || {
                WAITING.with(|w| w.borrow_mut().take());
                script.remove();
            })
        };
        let _ = script.add_event_listener_with_callback("load", loaded.as_ref().unchecked_ref());
        let _ = script.add_event_listener_with_callback("error", failed.as_ref().unchecked_ref());
        loaded.forget();
        failed.forget();
        let _ = body.append_child(&script);
    }

    /// Draws once ECharts is loaded and the container is in the document:
    /// a chart inside a `Suspense` may run its effect before its container
    /// is attached. Tries every 50 ms, `tries` times.
    pub fn draw_when_attached(id: &'static str, chart: Chart, on_event: Option<Callback<ChartEvent>>, tries: u32) {
        if !echarts_loaded() {
            return with_echarts(move || draw_when_attached(id, chart, on_event, tries));
        }
        if document().get_element_by_id(id).is_some_and(|el| el.is_connected()) {
            draw(id, &chart, on_event);
        } else if tries > 0 {
            set_timeout(
                move || draw_when_attached(id, chart, on_event, tries - 1),
                std::time::Duration::from_millis(50),
            );
        }
    }

    fn draw(id: &'static str, chart: &Chart, on_event: Option<Callback<ChartEvent>>) {
        let Some(el) = document().get_element_by_id(id) else { return };
        let Ok(json) = serde_json::to_string(chart) else { return };
        let Ok(option) = js_sys::JSON::parse(&json) else { return };
        CHARTS.with(|charts| {
            let mut charts = charts.borrow_mut();
            // A new element (after navigation) needs a new instance.
            let stale = charts.get(id).is_none_or(|(e, i)| e != &el || i.is_disposed());
            if stale {
                let inst = echarts_init(&el);
                if let Some(cb) = on_event {
                    let click = Closure::<dyn Fn(JsValue)>::new(move |p: JsValue| {
                        if let Some(n) = name_of(&p) {
                            cb.run(ChartEvent::Click(n));
                        }
                    });
                    let over =
                        Closure::<dyn Fn(JsValue)>::new(move |p: JsValue| cb.run(ChartEvent::Hover(name_of(&p))));
                    let out = Closure::<dyn Fn(JsValue)>::new(move |_| cb.run(ChartEvent::Hover(None)));
                    inst.on("click", click.as_ref().unchecked_ref());
                    inst.on("mouseover", over.as_ref().unchecked_ref());
                    inst.on("mouseout", out.as_ref().unchecked_ref());
                    // The handlers live as long as the chart: until the page goes.
                    click.forget();
                    over.forget();
                    out.forget();
                }
                charts.insert(id, (el.clone(), inst));
            }
            if let Some((_, inst)) = charts.get(id) {
                inst.set_option(option, true);
            }
        });
        ensure_resize_listener();
    }

    fn ensure_resize_listener() {
        thread_local!(static ATTACHED: RefCell<bool> = const { RefCell::new(false) });
        if ATTACHED.with(|a| a.replace(true)) {
            return;
        }
        let on_resize = Closure::<dyn Fn()>::new(|| CHARTS.with(|c| c.borrow().values().for_each(|(_, i)| i.resize())));
        let _ = window().add_event_listener_with_callback("resize", on_resize.as_ref().unchecked_ref());
        on_resize.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend() -> TrendData {
        let s = |c: Vec<i64>| Series {
            calls: c.clone(),
            tokens: c.iter().map(|x| x * 10).collect(),
            cost_nanos: c.iter().map(|x| x * 1_000_000_000).collect(),
        };
        TrendData {
            periods: vec!["2026-09".into(), "2026-10".into(), "2026-11".into()],
            total: s(vec![3, 5, 2]),
            by_provider: vec![
                ("gemini".into(), "Gemini".into(), s(vec![1, 4, 1])),
                ("openai".into(), "OpenAI".into(), s(vec![2, 1, 1])),
            ],
            projected_cost_nanos: 6_000_000_000,
        }
    }

    #[test]
    fn trend_chart_carries_labels_and_values() {
        let labels = vec!["2026-10".to_string(), "2026-11".to_string()];
        let v = serde_json::to_value(cost_trend_chart(&labels, &[1.5, 2.25])).unwrap();
        assert_eq!(v["xAxis"]["data"], serde_json::json!(["2026-10", "2026-11"]));
        assert_eq!(v["series"][0]["type"], "line");
        assert_eq!(v["series"][0]["data"], serde_json::json!([1.5, 2.25]));
    }

    #[test]
    fn usage_trend_has_total_providers_peak_and_dashed_projection() {
        let v = serde_json::to_value(usage_trend_chart(&trend(), Metric::Cost)).unwrap();
        let series = v["series"].as_array().unwrap();
        let names: Vec<&str> = series.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Total", "Gemini", "OpenAI", "Projection"]);
        assert_eq!(series[0]["data"], serde_json::json!([3.0, 5.0, 2.0]));
        assert_eq!(series[0]["markPoint"]["data"][0]["type"], "max");
        assert_eq!(series[3]["lineStyle"]["type"], "dashed");
        assert_eq!(series[3]["data"], serde_json::json!([null, 5.0, 6.0]));
        // Calls: the same projection factor (6/2 = 3x) applied to the month's calls.
        let c = serde_json::to_value(usage_trend_chart(&trend(), Metric::Calls)).unwrap();
        assert_eq!(c["series"][3]["data"], serde_json::json!([null, 5.0, 6.0]));
        assert_eq!(c["yAxis"]["name"], "Calls");
        let tk = serde_json::to_value(usage_trend_chart(&trend(), Metric::Tokens)).unwrap();
        assert_eq!(tk["series"][0]["data"], serde_json::json!([30.0, 50.0, 20.0]));
    }

    #[test]
    fn cost_latency_has_a_named_point_per_model_and_spread_a_bar_per_model() {
        let v = serde_json::to_value(cost_latency_chart(&[("Gemini pro".into(), 820.0, 0.00625)])).unwrap();
        assert_eq!(v["series"][0]["type"], "scatter");
        assert_eq!(v["series"][0]["data"][0], serde_json::json!({"value": [820.0, 0.00625], "name": "Gemini pro"}));
        let s = serde_json::to_value(latency_spread_chart(
            &["fast", "slow"],
            &[("A".into(), vec![75.0, 25.0]), ("B".into(), vec![0.0, 100.0])],
        ))
        .unwrap();
        assert_eq!(s["xAxis"]["data"], serde_json::json!(["fast", "slow"]));
        assert_eq!(s["series"][1], serde_json::json!({"type": "bar", "name": "B", "data": [0.0, 100.0]}));
    }

    #[test]
    fn pie_has_a_slice_per_provider() {
        let v = serde_json::to_value(cost_pie_chart(&[("Gemini".into(), 1.25), ("OpenAI".into(), 0.5)])).unwrap();
        assert_eq!(v["series"][0]["type"], "pie");
        // No labels drawn on the canvas, so none can overlap at any width.
        assert_eq!(v["series"][0]["label"]["show"], false);
        assert_eq!(v["series"][0]["labelLine"]["show"], false);
        assert_eq!(v["series"][0]["data"][0], serde_json::json!({"value": 1.25, "name": "Gemini"}));
        assert_eq!(v["series"][0]["data"].as_array().unwrap().len(), 2);
    }
}
