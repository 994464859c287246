/**
 * The doctor's report for a person: one line per check with ✓ ! ✗ – (PASS WARN FAIL SKIP where the terminal may not
 * show them), the facts indented below, the hint on failures, and a last line that names the first broken link.
 * Results are printed in report order as soon as they and all before them are known, so a slow check at the end
 * never hides the verdict on the first ones.
 */
import type { Writable } from 'node:stream'
import { colorEnabled } from '../terminal/io.js'
import type { CheckResult, CheckStatus, DoctorReport } from './types.js'

export interface ReportStyle {
  /** ✓ ! ✗ – rather than PASS WARN FAIL SKIP. */
  unicode: boolean
  color: boolean
}

/**
 * The report is the command's output, so it goes to stdout and colors follow stdout (not stderr, as for messages).
 * Symbols need a UTF-8 locale and a terminal that is not `dumb`.
 */
export function reportStyle(stdout: { isTTY?: boolean }, env: NodeJS.ProcessEnv): ReportStyle {
  return { unicode: supportsUnicode(env), color: colorEnabled(env, Boolean(stdout.isTTY)) }
}

export function supportsUnicode(env: NodeJS.ProcessEnv): boolean {
  if (env.TERM === 'dumb') return false
  // The first of these that is set decides, as for the C library.
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || ''
  if (locale) return /utf-?8/i.test(locale)
  // Windows terminals have no locale variables and show these symbols; a POSIX system without a locale is "C".
  return process.platform === 'win32'
}

const symbols: Record<CheckStatus, { unicode: string; ascii: string; color: string }> = {
  pass: { unicode: '✓', ascii: 'PASS', color: '32' },
  warn: { unicode: '!', ascii: 'WARN', color: '33' },
  fail: { unicode: '✗', ascii: 'FAIL', color: '31;1' },
  skip: { unicode: '–', ascii: 'SKIP', color: '2' },
}

/** The width of the title column: the longest title. */
export function titleWidth(titles: readonly string[]): number {
  return Math.max(0, ...titles.map((title) => title.length))
}

export function renderCheck(result: CheckResult, style: ReportStyle, width: number): string {
  const paint = painter(style)
  const symbol = symbols[result.status]
  const mark = paint(symbol.color, style.unicode ? symbol.unicode : symbol.ascii)
  const markWidth = style.unicode ? 1 : 4
  const indent = ' '.repeat(markWidth + 1 + width + 2)
  const [first = '', ...rest] = result.detail.split('\n')
  const title = result.status === 'skip' ? paint('2', result.title.padEnd(width)) : result.title.padEnd(width)
  const lines = [`${mark} ${title}  ${result.status === 'skip' ? paint('2', first) : first}`]
  for (const line of rest) lines.push(`${indent}${line}`)
  if (result.hint) lines.push(`${indent}${paint(result.status === 'fail' ? '1' : '2', 'hint:')} ${result.hint}`)
  return `${lines.join('\n')}\n`
}

export function renderSummary(report: DoctorReport, style: ReportStyle): string {
  const paint = painter(style)
  const count = (status: CheckStatus) => report.checks.filter((check) => check.status === status).length
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
  if (report.ok) {
    const warnings = count('warn')
    const text = warnings
      ? `All ${report.checks.length} checks passed, ${plural(warnings, 'warning')}.`
      : `All ${report.checks.length} checks passed.`
    return `\n${paint('32', text)}\n`
  }
  const first = report.checks.find((check) => check.id === report.firstFailure)
  const skipped = count('skip')
  const failed = `${plural(count('fail'), 'check')} failed${skipped ? `, ${skipped} skipped` : ''}`
  return `\n${paint('31;1', `${failed}.`)} The first broken link: ${first?.title ?? report.firstFailure} (exit ${report.exitCode}).\n`
}

/** Prints results in report order as soon as each one and all before it are known. */
export class ReportPrinter {
  private readonly done = new Map<string, CheckResult>()
  private next = 0
  private readonly width: number

  constructor(
    private readonly out: Writable,
    private readonly style: ReportStyle,
    private readonly order: readonly { id: string; title: string }[],
  ) {
    this.width = titleWidth(order.map((check) => check.title))
  }

  add(result: CheckResult): void {
    this.done.set(result.id, result)
    for (;;) {
      const id = this.order[this.next]?.id
      const ready = id === undefined ? undefined : this.done.get(id)
      if (!ready) return
      this.out.write(renderCheck(ready, this.style, this.width))
      this.next++
    }
  }

  finish(report: DoctorReport): void {
    for (const result of report.checks) if (!this.done.has(result.id)) this.add(result)
    this.out.write(renderSummary(report, this.style))
  }
}

function painter(style: ReportStyle): (code: string, text: string) => string {
  return (code, text) => (style.color ? `\u001b[${code}m${text}\u001b[0m` : text)
}
