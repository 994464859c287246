/**
 * `npx tsx bench/password.ts [--runs N] [--warmup N] [--rtt MS]`: how long `akm-access password` takes next to what
 * users type today, `kubectl get secret management-pod -o jsonpath='{.data.password}' | base64 -d`, on the same
 * sandbox, at loopback and behind a proxy that adds a round-trip time in front of the API server. The two alternate
 * (A B, B A, …) after a warm-up so that a shared machine's load falls on both alike; the result is the ratio of
 * medians. Every run's output is checked: a fast wrong answer would not count. Not part of `npm test`.
 *
 * akm-access does more than kubectl here (it also lists the pods to find the management pod and the Secret its
 * spec references), in the same round trip.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { assertBuilt, cliEnv, cliPath } from '../test/helpers/cli.js'
import { Sandbox } from '../test/sandbox/index.js'
import { startLatencyProxy } from './lib/latency-proxy.js'
import { alternate, type Case, type Stats } from './lib/measure.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    rtt: { type: 'string', default: '50' },
  },
})
const runs = Math.max(10, Number(values.runs))
const warmup = Math.max(1, Number(values.warmup))
const rttMs = Number(values.rtt)

/** Wall time from spawn to exit; the process must exit 0 and print exactly `expected`. */
function timed(argv: string[], env: NodeJS.ProcessEnv, expected: string): () => Promise<number> {
  return () =>
    new Promise((resolvePromise, reject) => {
      const start = performance.now()
      const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
      const out: Buffer[] = []
      const err: Buffer[] = []
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
      child.on('error', reject)
      child.on('close', (code) => {
        const elapsed = performance.now() - start
        const stdout = Buffer.concat(out).toString('utf8')
        if (code !== 0 || stdout !== expected) {
          reject(new Error(`${argv.join(' ')} exited ${code} with the wrong output: ${Buffer.concat(err)}`))
        } else resolvePromise(elapsed)
      })
    })
}

const kubectlCommand = "kubectl get secret management-pod -o jsonpath='{.data.password}' | base64 -d"

function cases(env: NodeJS.ProcessEnv, password: string): Case[] {
  return [
    {
      name: 'akm-access password',
      command: 'akm-access password',
      run: timed([process.execPath, cliPath, 'password'], env, `${password}\n`),
    },
    {
      name: 'kubectl | base64 -d',
      command: kubectlCommand,
      // kubectl prints no newline after a jsonpath; the pipe is part of what users run, so it is timed too.
      run: timed(['sh', '-c', kubectlCommand], env, password),
    },
  ]
}

const format = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`

function report(title: string, results: Map<string, Stats>): { title: string; ratio: number; results: object } {
  const ours = results.get('akm-access password')!
  const theirs = results.get('kubectl | base64 -d')!
  const ratio = ours.median / theirs.median
  const lines = [
    `\n${title} (${ours.runs} runs each, alternating, after ${warmup} warm-up runs)`,
    `  ${'command'.padEnd(24)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'max'.padStart(9)}`,
    ...[...results].map(([name, s]) => `  ${name.padEnd(24)} ${format(s.median)} ${format(s.min)} ${format(s.max)}`),
    `  ratio akm-access / kubectl: ${ratio.toFixed(2)} (medians), ${(ours.min / theirs.min).toFixed(2)} (minima)`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  return { title, ratio, results: Object.fromEntries(results) }
}

assertBuilt()
const sandbox = await Sandbox.start({ credentials: 'both' })
const proxies: { close(): Promise<void> }[] = []
try {
  process.stdout.write(
    `akm-access password vs ${kubectlCommand}\nnode ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'})\n`,
  )
  const settings: [string, string][] = [['loopback', sandbox.kubeconfigPath]]
  if (rttMs > 0) {
    const proxy = await startLatencyProxy(Number(new URL(sandbox.url).port), rttMs)
    proxies.push(proxy)
    settings.push([
      `${rttMs} ms round trip to the API server`,
      sandbox.writeKubeconfig({ server: `https://127.0.0.1:${proxy.port}` }),
    ])
  }
  const summary = []
  for (const [title, kubeconfig] of settings) {
    // A HOME of its own per setting: kubectl's discovery cache and akm-access start alike (the warm-up fills them).
    const env = cliEnv(kubeconfig)
    summary.push(report(title, await alternate(cases(env, sandbox.password), { warmup, runs })))
  }
  const outDir = resolve(import.meta.dirname, 'out')
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, 'password.json')
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), runs, warmup, summary }, null, 2)}\n`)
  process.stdout.write(`\nwrote ${file}\n`)
} finally {
  for (const proxy of proxies) await proxy.close()
  await sandbox.stop()
}
