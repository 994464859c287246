/**
 * The README's exit-code table is a contract with scripts: it must list exactly the codes akm-access uses. The e2e
 * tests prove that each failure exits with its ExitCode; this proves the README says the same.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ExitCode } from '../../src/errors.js'

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
const section = readme.slice(
  readme.indexOf('## Exit codes'),
  readme.indexOf('\n## ', readme.indexOf('## Exit codes') + 1),
)

describe('README exit codes', () => {
  it('lists every ExitCode, each once, and nothing else', () => {
    const listed = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((match) => Number(match[1]))
    expect(listed).toEqual([...new Set(Object.values(ExitCode))].sort((a, b) => a - b))
  })
})
