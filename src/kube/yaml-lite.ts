/**
 * A fast path for reading kubeconfig files. Loading the `yaml` package costs about 30 ms, the largest single cost of
 * resolving a connection, on every command. Kubeconfigs written by kubectl and the cloud CLIs use a small block-style
 * subset of YAML, which this parser reads in well under a millisecond. It is deliberately conservative: anything
 * outside that subset (flow collections other than {} and [], anchors, tags, block scalars, multi-line scalars,
 * numbers, duplicate keys…) returns `undefined` and the caller falls back to the real `yaml` parser. For every input
 * it accepts, the result equals `yaml.parse` (the tests check this against the library).
 */

type Value = string | boolean | null | Value[] | { [key: string]: Value }

interface Line {
  indent: number
  text: string
  /** A blank or comment line came just before: it would end a multi-line scalar. */
  afterGap: boolean
}

class Unsupported extends Error {}

const bail = (): never => {
  throw new Unsupported()
}

/** Parses `text`, or returns undefined when it is outside the supported subset. */
export function parseYamlLite(text: string): unknown {
  try {
    const lines = toLines(text)
    if (lines.length === 0) return null
    const cursor = { lines, index: 0 }
    const value = parseNode(cursor, 0)
    if (cursor.index !== lines.length) bail()
    return value
  } catch (error) {
    if (error instanceof Unsupported) return undefined
    throw error
  }
}

function toLines(text: string): Line[] {
  if (text.startsWith('\uFEFF')) bail()
  const lines: Line[] = []
  const raw = text.split('\n')
  let started = false
  let gap = false
  for (let i = 0; i < raw.length; i++) {
    let line = raw[i]!
    if (line.endsWith('\r')) line = line.slice(0, -1)
    const content = line.trimStart()
    if (content === '' || content.startsWith('#')) {
      gap = true
      continue
    }
    const indent = line.length - content.length
    if (line.slice(0, indent).includes('\t')) bail()
    if (indent === 0 && (content === '---' || content.startsWith('--- '))) {
      // A document start is fine only before any content (and with nothing after it).
      if (started || stripComment(content.slice(3)).trim() !== '') bail()
      continue
    }
    if (indent === 0 && (content.startsWith('%') || content === '...' || content.startsWith('... '))) bail()
    started = true
    lines.push({ indent, text: content.trimEnd(), afterGap: gap })
    gap = false
  }
  return lines
}

interface Cursor {
  lines: Line[]
  index: number
}

function parseNode(cursor: Cursor, minIndent: number): Value {
  const line = cursor.lines[cursor.index]
  if (!line || line.indent < minIndent) return null
  if (isSequenceEntry(line.text)) return parseSequence(cursor, line.indent)
  if (keyOf(line.text) !== undefined) return parseMapping(cursor, line.indent)
  return bail()
}

function isSequenceEntry(text: string): boolean {
  return text === '-' || text.startsWith('- ')
}

function parseSequence(cursor: Cursor, indent: number): Value[] {
  const items: Value[] = []
  for (;;) {
    const line = cursor.lines[cursor.index]
    if (!line || line.indent < indent) return items
    if (line.indent > indent) bail()
    // A sequence may sit at its parent key's column; the next key there ends it.
    if (!isSequenceEntry(line.text)) return items
    const rest = line.text.slice(1)
    const restContent = rest.trimStart()
    if (restContent === '' || restContent.startsWith('#')) {
      cursor.index++
      const next = cursor.lines[cursor.index]
      items.push(next && next.indent > indent ? parseNode(cursor, indent + 1) : null)
      continue
    }
    // "- key: value" or "- - x": the rest of the line opens a node indented at its own column.
    const column = indent + 1 + (rest.length - restContent.length)
    if (isSequenceEntry(restContent) || keyOf(restContent) !== undefined) {
      cursor.lines[cursor.index] = { indent: column, text: restContent, afterGap: false }
      items.push(parseNode(cursor, column))
      continue
    }
    cursor.index++
    items.push(withContinuation(cursor, indent, restContent))
  }
}

function parseMapping(cursor: Cursor, indent: number): { [key: string]: Value } {
  const map: { [key: string]: Value } = {}
  for (;;) {
    const line = cursor.lines[cursor.index]
    if (!line || line.indent < indent) return map
    if (line.indent > indent) bail()
    const parsed = keyOf(line.text)
    if (parsed === undefined) return bail()
    const { key, rest } = parsed
    if (Object.hasOwn(map, key)) bail()
    cursor.index++
    const restContent = stripComment(rest).trim()
    if (restContent === '') {
      const next = cursor.lines[cursor.index]
      if (next && next.indent > indent) map[key] = parseNode(cursor, indent + 1)
      else if (next && next.indent === indent && isSequenceEntry(next.text)) map[key] = parseSequence(cursor, indent)
      else map[key] = null
    } else {
      map[key] = withContinuation(cursor, indent, rest.trim())
    }
  }
}

/** `key: rest` or `key:` → the key and what follows the colon; undefined when the line is not a mapping entry. */
function keyOf(text: string): { key: string; rest: string } | undefined {
  const first = text[0]
  if (first === '"' || first === "'") {
    const { value, end } = quoted(text)
    if (value === undefined) return undefined
    const after = text.slice(end)
    if (after === ':' || after.startsWith(': ')) return { key: value, rest: after.slice(1) }
    const trimmed = after.trimStart()
    if (trimmed === ':' || trimmed.startsWith(': ')) return bail()
    return undefined
  }
  let index = text.indexOf(': ')
  if (index === -1 && text.endsWith(':')) index = text.length - 1
  if (index <= 0) return undefined
  const key = text.slice(0, index)
  if (key.includes(' #') || key.trimEnd() !== key || key.startsWith('<<')) bail()
  const resolved = parsePlain(key)
  if (typeof resolved !== 'string') bail()
  return { key: resolved as string, rest: text.slice(index + 1) }
}

/**
 * A scalar, folded with the more-indented lines that continue it (gcloud writes its installHint that way). Only plain
 * scalars may continue; their lines are joined with single spaces, as YAML folds them.
 */
function withContinuation(cursor: Cursor, parentIndent: number, text: string): Value {
  const value = parseScalar(text)
  let folded = typeof value === 'string' && !/^["']/.test(text) ? stripComment(text).trimEnd() : undefined
  for (;;) {
    const next = cursor.lines[cursor.index]
    if (!next || next.indent <= parentIndent) break
    if (folded === undefined || next.afterGap || text.includes(' #')) return bail()
    if (next.text.includes(': ') || next.text.endsWith(':') || next.text.includes(' #')) return bail()
    folded = `${folded} ${next.text}`
    cursor.index++
  }
  if (folded === undefined || folded === text) return value
  const resolved = parsePlain(folded)
  return typeof resolved === 'string' ? resolved : bail()
}

function stripComment(text: string): string {
  const hash = text.search(/(^|\s)#/)
  return hash === -1 ? text : text.slice(0, hash)
}

function parseScalar(text: string): Value {
  const first = text[0]
  if (first === '"' || first === "'") {
    const { value, end } = quoted(text)
    if (value === undefined) return bail()
    if (stripComment(text.slice(end)).trim() !== '') bail()
    return value
  }
  const content = stripComment(text).trimEnd()
  if (content === '{}') return {}
  if (content === '[]') return []
  return parsePlain(content)
}

function parsePlain(text: string): Value {
  if (text === '' || text === '~' || text === 'null' || text === 'Null' || text === 'NULL') return null
  if (text === 'true' || text === 'True' || text === 'TRUE') return true
  if (text === 'false' || text === 'False' || text === 'FALSE') return false
  // Indicators, flow syntax, anchors, tags, block scalars, and anything that may read as a number: not ours.
  if (/^[[\]{}#&*!|>%@`,?:-]/.test(text) && !/^-[^\s\d.]/.test(text)) bail()
  if (/^[-+]?(\.?\d|\.(inf|nan)$)/i.test(text) || /^\.(inf|nan)$/i.test(text)) bail()
  if (text.includes(': ') || text.endsWith(':') || text.includes(' #') || /[{}[\],]/.test(text[0] ?? '')) bail()
  return text
}

const ESCAPES: Record<string, string> = {
  '\\': '\\',
  '"': '"',
  '/': '/',
  n: '\n',
  t: '\t',
  r: '\r',
  b: '\b',
  f: '\f',
  '0': '\0',
  ' ': ' ',
}

/** A quoted scalar at the start of `text`, closed on the same line. */
function quoted(text: string): { value: string | undefined; end: number } {
  const quote = text[0]
  let value = ''
  for (let i = 1; i < text.length; i++) {
    const char = text[i]!
    if (quote === "'") {
      if (char === "'") {
        if (text[i + 1] === "'") {
          value += "'"
          i++
          continue
        }
        return { value, end: i + 1 }
      }
      value += char
      continue
    }
    if (char === '"') return { value, end: i + 1 }
    if (char === '\\') {
      const next = text[i + 1]
      if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        value += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16))
        i += 5
        continue
      }
      const escaped = next === undefined ? undefined : ESCAPES[next]
      if (escaped === undefined) return { value: undefined, end: i }
      value += escaped
      i++
      continue
    }
    value += char
  }
  return { value: undefined, end: text.length }
}
