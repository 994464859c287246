/**
 * Load and integrity: 100 concurrent connections through `forward`, a 256 MiB stream each way through it, every
 * byte checked by SHA-256; `forward` across repeated pod replacements; and idle sessions (`shell`, `ssh`) kept
 * alive behind a load balancer that cuts connections idle for 60 s, for 10 minutes, in compressed time.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { reportedExit, type Terminal } from '../helpers/cli.js'
import {
  concurrentEchoSessions,
  type Running,
  run as runProgram,
  startProgram,
  strictHostKeyOptions,
} from '../helpers/openssh.js'
import { Sandbox } from '../sandbox/index.js'
import {
  type CliRun,
  cliInTerminalWithModes,
  expectCleanAfter,
  nextRun,
  portIsClosed,
  type RunEnv,
  runEnv,
  runToEnd,
  startCli,
} from './harness.js'

const MiB = 1024 * 1024
let sandbox: Sandbox
let seeded: RunEnv
let sshOptions: string[]
const running: CliRun[] = []
const programs: Running[] = []
const terminals: Terminal[] = []
/** Bytes whose SHA-256 was checked end to end, for the suite's summary. */
let verifiedBytes = 0

beforeAll(async () => {
  sandbox = await Sandbox.start()
  seeded = runEnv(sandbox.kubeconfigPath)
  expect((await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], seeded)).status).toBe(0)
  const knownHosts = join(seeded.home, '.config', 'akm-access', 'known_hosts')
  const alias = readFileSync(knownHosts, 'utf8').split(' ')[0]!
  sshOptions = ['-i', sandbox.userKey.path, ...strictHostKeyOptions(knownHosts, alias)]
})
afterEach(() => {
  for (const process of running.splice(0)) process.kill()
  for (const program of programs.splice(0)) program.kill()
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
  console.log(`bytes verified by SHA-256 end to end: ${verifiedBytes} (${(verifiedBytes / MiB).toFixed(1)} MiB)`)
})

async function startForward(run: RunEnv): Promise<{ forward: CliRun; port: number }> {
  const forward = startCli(['forward', '--port', '0'], run)
  running.push(forward)
  const port = Number((await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
  return { forward, port }
}

async function stopForward(forward: CliRun, port: number, run: RunEnv): Promise<void> {
  forward.kill('SIGINT')
  expect(await forward.status()).toBe(0)
  expect(await portIsClosed(port)).toBe(true)
  await expectCleanAfter(run)
}

/**
 * A reproducible pseudo-random stream: AES-128-CTR's keystream (the encryption of zeros), which `openssl enc` in the
 * pod produces byte for byte; random-looking, so nothing on the way can shortcut it.
 */
const streamKey = randomBytes(16)
const streamIv = randomBytes(16)
function keystream(bytes: number): Readable {
  const cipher = createCipheriv('aes-128-ctr', streamKey, streamIv)
  const zeros = Buffer.alloc(MiB)
  let left = bytes
  return new Readable({
    read() {
      if (left === 0) return void this.push(null)
      const size = Math.min(left, zeros.length)
      left -= size
      this.push(cipher.update(zeros.subarray(0, size)))
    },
  })
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of stream) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

describe('forward under load', () => {
  it('100 concurrent ssh connections, each echoing 256 KiB, all checked by SHA-256', async () => {
    const run = nextRun(seeded)
    const { forward, port } = await startForward(run)
    const round = await concurrentEchoSessions({ count: 100, bytes: 256 * 1024, port, sshOptions })
    expect(round.failures).toEqual([])
    expect(round.peak).toBe(100)
    expect([...round.hosts]).toEqual([sandbox.currentPodName])
    verifiedBytes += 100 * 256 * 1024 * 2
    await stopForward(forward, port, run)
  }, 120_000)

  it('256 MiB each way through one connection, byte for byte', async () => {
    const run = nextRun(seeded)
    const { forward, port } = await startForward(run)
    const size = 256 * MiB
    const ssh = (command: string, input?: Readable) => {
      const child = startProgram('ssh', ['-F', 'none', '-p', String(port), ...sshOptions, 'akamas@127.0.0.1', command])
      programs.push(child)
      if (input) input.pipe(child.child.stdin!)
      else child.child.stdin!.end()
      return child
    }
    const expected = await sha256Of(keystream(size))

    // Up: the pod hashes what arrives.
    const up = ssh('sha256sum', keystream(size))
    await up.waitFor(/^([0-9a-f]{64}) {2}-\n/, { stream: 'stdout', timeoutMs: 120_000 })
    expect((await up.exited).code, up.stderr).toBe(0)
    expect(up.stdout.split(' ')[0]).toBe(expected)

    // Down: the pod generates the same stream; we hash what arrives. (Running's stdout is text: hash raw bytes.)
    const key = streamKey.toString('hex')
    const iv = streamIv.toString('hex')
    const down = runProgram(
      'ssh',
      [
        '-F',
        'none',
        '-p',
        String(port),
        ...sshOptions,
        'akamas@127.0.0.1',
        `openssl enc -aes-128-ctr -K ${key} -iv ${iv} -nosalt < /dev/zero 2>/dev/null | head -c ${size}`,
      ],
      { timeoutMs: 120_000 },
    )
    const result = await down
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout.length).toBe(size)
    expect(createHash('sha256').update(result.stdout).digest('hex')).toBe(expected)
    verifiedBytes += 2 * size

    await stopForward(forward, port, run)
  }, 180_000)

  it('follows five pod replacements in a row: open sessions cut fast, the next 20 concurrent ones all verified', async () => {
    const run = nextRun(seeded)
    const { forward, port } = await startForward(run)
    const replacements: (() => Promise<unknown>)[] = [
      () => sandbox.rollout(),
      async () => {
        await sandbox.deletePod(sandbox.currentPodName)
        await sandbox.addPod()
      },
      () => sandbox.rollout(),
      async () => {
        // An eviction whose replacement comes only after a connection has started waiting for it.
        await sandbox.deletePod(sandbox.currentPodName)
        const waiting = runProgram('ssh', [
          '-F',
          'none',
          '-p',
          String(port),
          ...sshOptions,
          'akamas@127.0.0.1',
          'hostname',
        ])
        await forward.waitFor(/waiting for a ready management pod/)
        const replacement = await sandbox.addPod()
        const result = await waiting
        expect(result.stdout.toString(), result.stderr).toBe(`${replacement}\n`)
      },
      () => sandbox.rollout(),
    ]
    for (const [index, replace] of replacements.entries()) {
      const before = sandbox.currentPodName
      const open = startProgram('ssh', [
        '-F',
        'none',
        '-p',
        String(port),
        ...sshOptions,
        'akamas@127.0.0.1',
        'echo ready; exec cat',
      ])
      programs.push(open)
      await open.waitFor(/ready/, { stream: 'stdout' })
      const cutFrom = Date.now()
      await replace()
      expect({ replacement: index, code: (await open.exited).code }).toEqual({ replacement: index, code: 255 })
      expect(Date.now() - cutFrom).toBeLessThan(10_000)
      expect(sandbox.currentPodName).not.toBe(before)
      const round = await concurrentEchoSessions({ count: 20, bytes: 128 * 1024, port, sshOptions })
      expect({ replacement: index, failures: round.failures }).toEqual({ replacement: index, failures: [] })
      expect([...round.hosts]).toEqual([sandbox.currentPodName])
      verifiedBytes += 20 * 128 * 1024 * 2
    }
    expect(forward.child.exitCode).toBeNull()
    await stopForward(forward, port, run)
  }, 180_000)
})

/**
 * Time compressed 30 times, ratios kept: the load balancer cuts connections idle for 2 s (60 s), the session stays
 * idle for 20 s (10 minutes), keepalives go every 667 ms (akm-access's default 20 s). A connection survives only if
 * keepalives cross the balancer in both directions at least once per idle window; with them off the same session is
 * cut within one window, which shows the cut is real.
 */
describe('idle sessions behind a load balancer that cuts idle connections', () => {
  const idleCutMs = 2000
  const sessionMs = 20_000
  const keepalive = '667ms'

  function session(command: 'shell' | 'ssh', keepaliveFlag: string): { terminal: Terminal; run: RunEnv } {
    const run = nextRun(seeded)
    const args = command === 'shell' ? ['shell'] : ['ssh', '--no-tunnel']
    const terminal = cliInTerminalWithModes([...args, '--keepalive', keepaliveFlag], run)
    terminals.push(terminal)
    return { terminal, run }
  }

  it('shell and ssh with keepalives: alive after "10 minutes"; without: cut (255), terminal restored', async () => {
    sandbox.streamFaults.idleTimeoutMs = idleCutMs
    const kept = (['shell', 'ssh'] as const).map((command) => ({ command, ...session(command, keepalive) }))
    const cut = (['shell', 'ssh'] as const).map((command) => ({ command, ...session(command, '0') }))
    await Promise.all([...kept, ...cut].map(({ terminal }) => terminal.waitFor(/\$ $/m)))

    // Without keepalives: cut within a window or two, and akm-access says so (never 0).
    await Promise.all(
      cut.map(async ({ command, terminal, run }) => {
        await terminal.waitFor('modes-done', { timeoutMs: 4 * idleCutMs + 5000 })
        expect({ command, ...reportedExit(terminal.output) }).toEqual({ command, code: 255, restored: true })
        expect(terminal.output).toMatch(/Error: the connection to the (management )?pod was lost/)
        await expectCleanAfter(run)
      }),
    )

    await new Promise((resolve) => setTimeout(resolve, sessionMs))
    await Promise.all(
      kept.map(async ({ command, terminal, run }) => {
        const mark = terminal.output.length
        terminal.type('echo "still $((40+2))"\r')
        await terminal.waitFor('still 42', { from: mark })
        terminal.type('exit 3\r')
        await terminal.waitFor('modes-done')
        expect({ command, ...reportedExit(terminal.output) }).toEqual({ command, code: 3, restored: true })
        await expectCleanAfter(run)
      }),
    )
  }, 60_000)
})
