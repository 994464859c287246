/**
 * Bad input, data-driven (test/reliability/corpus/): malformed kubeconfigs, Secrets as they are found in the wild,
 * bad flags and paths cp cannot use. Every case must end with its exit code and one `Error:` line that names the
 * problem, never a stack trace, never a secret, and nothing left behind. Usable oddities (PKCS#8, literal `\n`…)
 * must simply work.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { type ArgsCase, flagCases, pathCases } from './corpus/flags-and-paths.js'
import { kubeconfigCases } from './corpus/kubeconfigs.js'
import { type DerivedKeys, deriveKeys, secretCases } from './corpus/secrets.js'
import {
  expectCleanAfter,
  expectError,
  expectProxyError,
  nextRun,
  type RunEnv,
  runEnv,
  runToEnd,
  secretsOf,
  textLeaks,
} from './harness.js'

let sandbox: Sandbox
let seeded: RunEnv
let keys: DerivedKeys
let scratch: string
let counted = 0

beforeAll(async () => {
  sandbox = await Sandbox.start()
  seeded = runEnv(sandbox.kubeconfigPath)
  expect((await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], seeded)).status).toBe(0)
  keys = deriveKeys(sandbox)
  scratch = mkdtempSync(join(tmpdir(), 'akm-rel-corpus-'))
  writeFileSync(join(sandbox.workDir, 'corpus.txt'), 'corpus\n')
})
afterAll(async () => {
  await sandbox?.stop()
  rmSync(scratch, { recursive: true, force: true })
  console.log(`inputs in the corpus: ${counted}`)
})

/** Runs `work` over `items`, at most `limit` at a time (each item is a CLI run: they are independent). */
async function inBatches<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item)
    }),
  )
}

/** What every refused input must look like; `secrets` must not appear anywhere in what was printed. */
async function expectRefused(
  label: string,
  result: { status: number; out: { stdout: string; stderr: string } },
  run: RunEnv,
  expected: { code: number; message: RegExp },
): Promise<void> {
  const { stderr, stdout } = result.out
  expect({ case: label, status: result.status }, stderr).toEqual({ case: label, status: expected.code })
  expect(stdout, label).toBe('')
  // oclif reports an unknown command itself ("›   Error: command nope not found"); proxy speaks one line to ssh.
  if (/command \S+ not found/.test(stderr)) expect(stderr).toMatch(expected.message)
  else if (label.startsWith('proxy:')) expectProxyError(stderr, expected.message)
  else expectError(stderr, { message: expected.message, hintRequired: false })
  expect(textLeaks(stdout + stderr, secretsOf(sandbox), label)).toEqual([])
  await expectCleanAfter(run)
}

describe('malformed kubeconfigs', () => {
  it(`${kubeconfigCases.length} cases: exit 3 (6 for a failing credential plugin), the problem named`, async () => {
    await inBatches(kubeconfigCases, 6, async (entry) => {
      const dir = mkdtempSync(join(scratch, 'kubeconfig-'))
      const { kubeconfig, args = [] } = entry.arrange(dir, sandbox)
      const run = nextRun(seeded, { KUBECONFIG: kubeconfig })
      const result = await runToEnd(['password', ...args], run, { timeoutMs: 15_000 })
      await expectRefused(entry.name, result, run, entry)
      counted++
    })
  })
})

describe('Secrets', () => {
  it(`${secretCases.length} cases: broken ones exit 12 naming the Secret and key; usable ones log in`, async () => {
    await inBatches(
      secretCases.map((entry, index) => [index, entry] as const),
      6,
      async ([index, entry]) => {
        const name = `corpus-${index}`
        const { data = {}, rawData, type } = entry.data(sandbox, keys)
        sandbox.setSecret(name, data, { ...(rawData ? { rawData } : {}), ...(type ? { type } : {}) })
        const run = nextRun(seeded)
        const flags = ['--secret', name, ...(entry.flags?.(keys) ?? [])]
        const args =
          entry.command === 'password'
            ? ['password', ...flags]
            : ['ssh', '--no-tunnel', ...flags, '--', 'echo logged-in']
        const result = await runToEnd(args, run, { timeoutMs: 15_000 })
        const secrets = [...secretsOf(sandbox), ...keyLines(keys.encrypted), ...keyLines(keys.pkcs8)]
        if (entry.code === 0) {
          expect({ case: entry.name, status: result.status }, result.out.stderr).toEqual({
            case: entry.name,
            status: 0,
          })
          expect(result.out.stdout).toBe('logged-in\n')
          expect(textLeaks(result.out.stderr, secrets, entry.name)).toEqual([])
          await expectCleanAfter(run)
        } else {
          expect({ case: entry.name, status: result.status }, result.out.stderr).toEqual({
            case: entry.name,
            status: entry.code,
          })
          expect(result.out.stdout).toBe('')
          expectError(result.out.stderr, { message: entry.message ?? /./, hintRequired: true })
          expect(textLeaks(result.out.stderr, secrets, entry.name)).toEqual([])
          await expectCleanAfter(run)
        }
        counted++
      },
    )
  })
})

function keyLines(key: string): string[] {
  return key
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'))
}

describe('flags and arguments', () => {
  it(`${flagCases.length} cases: exit 2 for the flag itself, else the code of what it names`, async () => {
    await inBatches(flagCases, 6, async (entry) => {
      const run = nextRun(seeded)
      const args = substitute(entry, mkdtempSync(join(scratch, 'flags-')))
      const result = await runToEnd(args, run, { timeoutMs: 15_000 })
      await expectRefused(`${args[0]}: ${entry.name}`, result, run, entry)
      counted++
    })
  })
})

describe('paths cp cannot use', () => {
  it(`${pathCases.length} cases: 17 for the local side, 18 for the pod's, 2 for an ambiguous command line`, async () => {
    await inBatches(pathCases, 6, async (entry) => {
      const dir = mkdtempSync(join(scratch, 'paths-'))
      const args = substitute(entry, dir)
      const run = nextRun(seeded)
      const result = await runToEnd(args, run, { timeoutMs: 15_000 })
      await expectRefused(entry.name, result, run, entry)
      // A FIFO named as the destination is still a FIFO (cp must not rename a file over it).
      if (args.includes(join(dir, 'fifo'))) expect(statSync(join(dir, 'fifo')).isFIFO()).toBe(true)
      counted++
    })
  })
})

/** Fills `{dir}`, `{file}`, `{fifo}` and `{workFifo}` in a case's arguments (see corpus/flags-and-paths.ts). */
function substitute(entry: ArgsCase, dir: string): string[] {
  const used = entry.args.join(' ')
  if (used.includes('{file}')) writeFileSync(join(dir, 'file.txt'), 'a file\n')
  if (used.includes('{fifo}')) execFileSync('mkfifo', [join(dir, 'fifo')])
  const workFifo = join(sandbox.workDir, `fifo-${Math.random().toString(36).slice(2)}`)
  if (used.includes('{workFifo}')) execFileSync('mkfifo', [workFifo])
  return entry.args.map((arg) =>
    arg
      .replaceAll('{dir}', dir)
      .replaceAll('{file}', join(dir, 'file.txt'))
      .replaceAll('{fifo}', join(dir, 'fifo'))
      .replaceAll('{workFifo}', `:${workFifo.replace(sandbox.workDir, '/work')}`),
  )
}
