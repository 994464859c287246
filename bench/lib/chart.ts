/**
 * The benchmark's ratios as an SVG bar chart: one bar per target (akm-access / its peer, lower is better), the
 * target as a tick, green when met. Plain SVG, no library: a handful of rectangles and labels.
 */
export function renderChart(rows: { label: string; ratio: number; max: number }[]): string {
  const width = 760
  const labelWidth = 300
  const barHeight = 22
  const gap = 10
  const top = 40
  const scaleMax = Math.max(2, ...rows.map((row) => Math.max(row.ratio, row.max))) * 1.1
  const x = (value: number) => labelWidth + (value / scaleMax) * (width - labelWidth - 60)
  const height = top + rows.length * (barHeight + gap) + 30
  const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13" role="img">`,
    '<title>akm-access benchmark: ratios to kubectl and OpenSSH</title>',
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">akm-access / what users type today (lower is better; tick = target)</text>`,
    `<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${height - 24}" stroke="#999" stroke-dasharray="4 3"/>`,
    `<text x="${x(1) - 8}" y="${height - 8}" fill="#666">1×</text>`,
  ]
  rows.forEach((row, index) => {
    const y = top + index * (barHeight + gap)
    const met = row.ratio <= row.max
    parts.push(
      `<text x="10" y="${y + 16}">${escapeXml(row.label)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${x(row.ratio) - labelWidth}" height="${barHeight}" fill="${met ? '#2e9d57' : '#d9534f'}"/>`,
      `<line x1="${x(row.max)}" y1="${y - 3}" x2="${x(row.max)}" y2="${y + barHeight + 3}" stroke="black" stroke-width="2"/>`,
      `<text x="${x(row.ratio) + 6}" y="${y + 16}">${row.ratio.toFixed(2)}×</text>`,
    )
  })
  parts.push('</svg>', '')
  return parts.join('\n')
}
