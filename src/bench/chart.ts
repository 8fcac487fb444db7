/**
 * Benchmark charts as SVG, drawn by Vega (a devDependency: benchmarks only). A chart here is a
 * Vega spec built from the figures; Vega lays it out and renders it headless
 * (`renderer: 'none'`, then `toSVG()`), so no markup is written by hand.
 */
import { writeFile } from 'node:fs/promises';

import type * as vega from 'vega';

/** One bar: `value` for `series` within `group`; `high` draws a tick above it (e.g. p99 over p50). */
export interface BarRow {
  group: string;
  series: string;
  value: number;
  high?: number;
}

export interface GroupedBarChart {
  title: string;
  subtitle?: string;
  xTitle: string;
  yTitle: string;
  rows: BarRow[];
  /** A logarithmic y axis, for figures that span orders of magnitude. */
  log?: boolean;
  /** Draw the `high` ticks (say what they are in the subtitle). */
  ticks?: boolean;
  legendTitle?: string;
  /** A dashed horizontal line: a target or an average. */
  rule?: { value: number; label: string };
}

const WIDTH = 560;
const HEIGHT = 300;

/** Grouped bars (one group per x category, one coloured bar per series), values printed on top. */
export function groupedBarSpec(chart: GroupedBarChart): vega.Spec {
  const log = chart.log ?? false;
  const values = chart.rows.map((r) => ({ ...r, top: r.high ?? r.value, label: formatValue(r.value) }));
  const positives = values.flatMap((r) => [r.value, r.top]).filter((v) => v > 0);
  const floor = log ? Math.min(...positives, chart.rule?.value ?? Infinity) / 2 : 0;
  const marks: vega.Mark[] = [
    {
      type: 'group',
      from: { facet: { data: 'rows', name: 'facet', groupby: 'group' } },
      encode: { enter: { x: { scale: 'x', field: 'group' }, height: { signal: 'height' } } },
      signals: [{ name: 'width', update: "bandwidth('x')" }],
      scales: [{ name: 'pos', type: 'band', range: 'width', domain: { data: 'facet', field: 'series' }, padding: 0.08 }],
      marks: [
        {
          type: 'rect',
          from: { data: 'facet' },
          encode: {
            enter: {
              x: { scale: 'pos', field: 'series' },
              width: { scale: 'pos', band: 1 },
              y: { scale: 'y', field: 'value' },
              y2: { field: { group: 'height' } },
              fill: { scale: 'color', field: 'series' },
            },
          },
        },
        {
          type: 'rect',
          from: { data: 'facet' },
          encode: {
            enter: {
              x: { scale: 'pos', field: 'series' },
              width: { scale: 'pos', band: 1 },
              y: { scale: 'y', field: 'top' },
              height: { value: chart.ticks ? 2 : 0 },
              fill: { value: '#222' },
            },
          },
        },
        {
          type: 'text',
          from: { data: 'facet' },
          encode: {
            enter: {
              x: { scale: 'pos', field: 'series', band: 0.5 },
              y: { scale: 'y', field: 'top', offset: -4 },
              align: { value: 'center' },
              fontSize: { value: 9 },
              text: { field: 'label' },
              fill: { value: '#222' },
            },
          },
        },
      ],
    },
  ];
  if (chart.rule) {
    marks.push(
      {
        type: 'rule',
        encode: {
          enter: {
            x: { value: 0 },
            x2: { signal: 'width' },
            y: { scale: 'y', value: chart.rule.value },
            stroke: { value: '#c0392b' },
            strokeDash: { value: [4, 3] },
          },
        },
      },
      {
        type: 'text',
        encode: {
          enter: {
            x: { signal: 'width' },
            y: { scale: 'y', value: chart.rule.value, offset: -3 },
            align: { value: 'right' },
            fontSize: { value: 9 },
            fill: { value: '#c0392b' },
            text: { value: chart.rule.label },
          },
        },
      },
    );
  }
  const domainValues = chart.rule ? [...values, { ...values[0]!, value: chart.rule.value, top: chart.rule.value }] : values;
  return {
    $schema: 'https://vega.github.io/schema/vega/v5.json',
    width: WIDTH,
    height: HEIGHT,
    padding: 8,
    background: 'white',
    title: { text: chart.title, ...(chart.subtitle ? { subtitle: chart.subtitle } : {}) },
    data: [
      { name: 'rows', values },
      { name: 'domain', values: domainValues },
    ],
    scales: [
      { name: 'x', type: 'band', domain: { data: 'rows', field: 'group' }, range: 'width', padding: 0.2 },
      log
        ? { name: 'y', type: 'log', domain: { data: 'domain', fields: ['value', 'top'] }, domainMin: floor, range: 'height', nice: true }
        : { name: 'y', type: 'linear', domain: { data: 'domain', fields: ['value', 'top'] }, range: 'height', nice: true, zero: true },
      { name: 'color', type: 'ordinal', domain: { data: 'rows', field: 'series' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: chart.xTitle },
      { orient: 'left', scale: 'y', title: chart.yTitle, grid: true },
    ],
    legends: [{ fill: 'color', title: chart.legendTitle ?? '' }],
    marks,
  };
}

function formatValue(v: number): string {
  if (v >= 100) return String(Math.round(v));
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Lays out and renders a Vega spec to an SVG document, headless. */
export async function renderSvg(spec: vega.Spec): Promise<string> {
  // Loaded on first use, after a bench's measurements: a charting library in the heap while
  // they run would make V8's marking steps (on the JS thread being timed) longer.
  const { View, parse } = await import('vega');
  const view = new View(parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders `chart` and writes it to `path`; resolves the path. */
export async function writeGroupedBarChart(path: string, chart: GroupedBarChart): Promise<string> {
  await writeFile(path, await renderSvg(groupedBarSpec(chart)));
  return path;
}
