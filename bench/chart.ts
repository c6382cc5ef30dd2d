/** A small horizontal grouped-bar chart as SVG: one group per workload, one bar per server and mode. */

export interface Series {
  readonly name: string;
  readonly color: string;
}

export interface Group {
  readonly label: string;
  /** One value per series, in the order of the series; null: not measured. */
  readonly values: ReadonlyArray<number | null>;
}

export interface BarChart {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly Series[];
  readonly groups: readonly Group[];
}

const xmlText = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A round axis maximum at or above `max`: 1, 2 or 5 times a power of ten. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

const round = (n: number) => Math.round(n * 10) / 10;

/** The chart without the series that have no value in any group. */
function measuredOnly(chart: BarChart): BarChart {
  const keep = chart.series.map((_, s) => chart.groups.some((g) => g.values[s] !== null && g.values[s] !== undefined));
  return {
    ...chart,
    series: chart.series.filter((_, s) => keep[s]),
    groups: chart.groups.map((g) => ({ ...g, values: g.values.filter((_, s) => keep[s]) })),
  };
}

export function barChart(all: BarChart): string {
  const chart = measuredOnly(all);
  const labelWidth = 130;
  const plotWidth = 520;
  const valueWidth = 70;
  const bar = 13;
  const gap = 3;
  const groupGap = 14;
  const top = 40;
  const legendRow = 16;
  const legendItems = chart.series.map((series) => ({ series, width: 24 + series.name.length * 6 }));
  const barsPerGroup = chart.series.length;
  const groupHeight = barsPerGroup * (bar + gap) - gap;
  const plotHeight = chart.groups.length * (groupHeight + groupGap);
  const width = labelWidth + plotWidth + valueWidth;
  const legend: Array<{ series: Series; x: number; row: number }> = [];
  let lx = labelWidth;
  let row = 0;
  for (const item of legendItems) {
    if (lx + item.width > width && lx > labelWidth) {
      lx = labelWidth;
      row += 1;
    }
    legend.push({ series: item.series, x: lx, row });
    lx += item.width;
  }
  const height = top + plotHeight + 30 + (row + 1) * legendRow + 8;
  const max = niceMax(Math.max(0, ...chart.groups.flatMap((g) => g.values.filter((v): v is number => v !== null))));
  const x = (value: number) => round(labelWidth + (plotWidth * value) / max);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${xmlText(chart.title)}</text>`,
  ];
  for (let i = 0; i <= 5; i += 1) {
    const value = (max * i) / 5;
    const gx = x(value);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${top + plotHeight - groupGap}" stroke="#dddddd"/>`);
    out.push(`<text x="${gx}" y="${top + plotHeight - groupGap + 14}" text-anchor="middle" fill="#555555">${xmlText(value.toLocaleString("en"))}</text>`);
  }
  out.push(`<text x="${labelWidth + plotWidth / 2}" y="${top + plotHeight - groupGap + 28}" text-anchor="middle" fill="#555555">${xmlText(chart.unit)}</text>`);
  chart.groups.forEach((group, g) => {
    const gy = top + g * (groupHeight + groupGap);
    out.push(`<text x="${labelWidth - 8}" y="${gy + groupHeight / 2 + 4}" text-anchor="end">${xmlText(group.label)}</text>`);
    group.values.forEach((value, s) => {
      const y = gy + s * (bar + gap);
      if (value === null) return;
      const color = chart.series[s]!.color;
      out.push(`<rect x="${labelWidth}" y="${y}" width="${round(Math.max(1, x(value) - labelWidth))}" height="${bar}" fill="${color}"/>`);
      out.push(`<text x="${round(x(value) + 4)}" y="${y + bar - 3}" fill="#333333">${xmlText(Math.round(value).toLocaleString("en"))}</text>`);
    });
  });
  for (const item of legend) {
    const ly = top + plotHeight + 30 + item.row * legendRow;
    out.push(`<rect x="${item.x}" y="${ly}" width="10" height="10" fill="${item.series.color}"/>`);
    out.push(`<text x="${item.x + 14}" y="${ly + 9}">${xmlText(item.series.name)}</text>`);
  }
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
