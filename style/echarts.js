// The ECharts the pages draw with, and nothing more: the chart types and
// components `src/ui/components/charts.rs` uses, from the `echarts`
// package's modular entry points. `scripts/setup.sh` bundles it with
// esbuild into `public/vendor/echarts.min.js` (served from our own origin,
// never a CDN). charming calls the global `echarts.init(element)`; the
// browser tests read charts back with `echarts.getInstanceByDom`.
// A chart type or component added to a chart must be added here too: an
// option ECharts was not built with is ignored (a series without its
// chart type logs an error in the browser console and draws nothing).
import { getInstanceByDom, init, use } from 'echarts/core';
import { BarChart, LineChart, PieChart, ScatterChart } from 'echarts/charts';
import { GridComponent, LegendComponent, MarkPointComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

use([BarChart, LineChart, PieChart, ScatterChart, GridComponent, LegendComponent, MarkPointComponent, TooltipComponent, CanvasRenderer]);

globalThis.echarts = { init, getInstanceByDom };
