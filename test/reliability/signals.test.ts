/**
 * SIGINT, SIGTERM and SIGHUP at every phase of a command: connecting (the API server held back), prompting (the
 * host key question, the choice of pod), in a session, and mid-transfer. The signal comes from another process (as
 * `kill`, a closing terminal, systemd), not from a key in raw mode.
 *
 * The convention, checked here: akm-access ends as a shell reports the signal, 128+n (SIGHUP 129, SIGINT 130,
 * SIGTERM 143), either as its exit code after cleaning up or, before it holds anything to clean up (connecting), by
 * the signal itself; `forward` (and a `sync --watch` between passes) exits 0, since a signal is its normal end, as
 * for kubectl port-forward. In every case the terminal is restored, the remote side is told (a remote command is
 * gone: hung up with its terminal, signalled over SSH, or given end of input; a cp temporary file is removed), and
 * nothing is left behind. A reader of stdout that goes away is SIGPIPE's case: 141, at once.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliPath, reportedExit, type Terminal } from '../helpers/cli.js'
import { type Running, startProgram, strictHostKeyOptions } from '../helpers/openssh.js'
import { Sandbox } from '../sandbox/index.js'
import {
  type CliRun,
  cliInTerminalWithModes,
  cliPidIn,
  expectCleanAfter,
  nextRun,
  portIsClosed,
  processesOf,
  type RunEnv,
  runEnv,
  runToEnd,
  startCli,
} from './harness.js'

const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
type Signal = (typeof signals)[number]
const signalStatus: Record<Signal, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 }

let sandbox: Sandbox
let seeded: RunEnv
let local: string
const running: CliRun[] = []
const programs: Running[] = []
const terminals: Terminal[] = []
const MiB = 1024 * 1024
/** Counts cases, for the suite's summary. */
const covered = new Set<string>()

beforeAll(async () => {
  sandbox = await Sandbox.start()
  seeded = runEnv(sandbox.kubeconfigPath)
  expect((await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], seeded)).status).toBe(0)
  local = mkdtempSync(join(tmpdir(), 'akm-rel-signals-'))
})
afterEach(() => {
  for (const process of running.splice(0)) process.kill()
  for (const program of programs.splice(0)) program.kill()
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
  rmSync(local, { recursive: true, force: true })
  console.log(`signals × phases covered: ${covered.size}`)
})

const unique = () => `${Date.now() % 100000}${randomBytes(3).readUIntBE(0, 3)}`

/** Processes on the machine (the pod shares its pid namespace) whose command line contains `marker`. */
function remoteProcesses(marker: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', '--', marker], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)
  } catch {
    return []
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** The remote side was told: its process is gone (soon after we are). */
async function expectRemoteGone(marker: string): Promise<void> {
  await until(() => remoteProcesses(marker).length === 0, `the remote process ${marker} to end`, 5000)
}

/** Waits until `count` more requests for the pod list have reached the sandbox (the runs are "connecting"). */
async function podListRequests(since: number, count: number): Promise<void> {
  await until(
    () => sandbox.requests.slice(since).filter((request) => request.path.endsWith('/pods')).length >= count,
    'the runs to ask for pods',
  )
}

function inTerminal(args: string[], run: RunEnv): Terminal {
  const terminal = cliInTerminalWithModes(args, run)
  terminals.push(terminal)
  return terminal
}

function track(process: CliRun): CliRun {
  running.push(process)
  return process
}

/** Sends `signal` to the CLI inside the terminal, then checks its status and that the terminal is restored. */
async function signalInTerminal(terminal: Terminal, run: RunEnv, signal: Signal, expected: number): Promise<void> {
  const pid = cliPidIn(run)
  expect(pid, 'the CLI in the terminal').toBeDefined()
  process.kill(pid!, signal)
  await terminal.waitFor('modes-done')
  expect(reportedExit(terminal.output), `${signal}; the terminal showed:\n${terminal.output}`).toEqual({
    code: expected,
    restored: true,
  })
  // Quietly: a signal is not an error to explain (and never a stack).
  const afterPrompt = terminal.output.slice(0, terminal.output.indexOf('exit='))
  expect(afterPrompt).not.toMatch(/Error:|\s+at .+:\d+:\d+/)
}

describe('connecting (the API server holds its answers back)', () => {
  it('shell and ssh in a terminal: 128+n, the terminal as it was', async () => {
    for (const command of [['shell'], ['ssh', '--port', '0']]) {
      sandbox.apiFaults.delayMs = 5000
      const since = sandbox.requests.length
      const runs = signals.map(() => nextRun(seeded))
      const terminalsBySignal = runs.map((run) => inTerminal(command, run))
      await podListRequests(since, signals.length)
      await Promise.all(
        signals.map(async (signal, index) => {
          await signalInTerminal(terminalsBySignal[index]!, runs[index]!, signal, signalStatus[signal])
          await expectCleanAfter(runs[index]!)
          covered.add(`connecting/${command[0]}/${signal}`)
        }),
      )
    }
  })

  it('cp, proxy and forward on pipes: 128+n (forward: 0), nothing left', async () => {
    sandbox.apiFaults.delayMs = 3000
    const cases = [
      { args: ['cp', ':/etc/hostname', `${local}/`], expected: (signal: Signal) => signalStatus[signal] },
      { args: ['proxy'], expected: (signal: Signal) => signalStatus[signal] },
      { args: ['forward', '--port', '0'], expected: () => 0 },
    ]
    const since = sandbox.requests.length
    const started = cases.flatMap((entry) =>
      signals.map((signal) => {
        const run = nextRun(seeded)
        return { entry, signal, run, process: track(startCli(entry.args, run, { keepStdin: true })) }
      }),
    )
    await podListRequests(since, started.length)
    await Promise.all(
      started.map(async ({ entry, signal, run, process }) => {
        const signalledAt = Date.now()
        process.kill(signal)
        expect({ command: entry.args[0], signal, status: await process.status() }, process.stderr).toEqual({
          command: entry.args[0],
          signal,
          status: entry.expected(signal),
        })
        // At once: not after the answer that the API server holds back for 3 s.
        expect(Date.now() - signalledAt, `${entry.args[0]} after ${signal}`).toBeLessThan(2000)
        expect(process.stderr).not.toMatch(/Error:|\s+at .+:\d+:\d+/)
        await expectCleanAfter(run)
        covered.add(`connecting/${entry.args[0]}/${signal}`)
      }),
    )
  })
})

describe('prompting', () => {
  it('the host key question (ssh and cp in a terminal): 128+n, the terminal out of raw mode, nothing stored', async () => {
    for (const command of [
      ['ssh', '--port', '0'],
      ['cp', ':/etc/hostname', `${local}/`],
    ]) {
      const runs = signals.map(() => runEnv(sandbox.kubeconfigPath)) // fresh HOMEs: the key is not known yet
      const asked = runs.map((run) => inTerminal(command, run))
      await Promise.all(asked.map((terminal) => terminal.waitFor('Are you sure you want to continue connecting')))
      await Promise.all(
        signals.map(async (signal, index) => {
          await signalInTerminal(asked[index]!, runs[index]!, signal, signalStatus[signal])
          // Not answered, so not trusted: known_hosts stays empty (no file at all).
          await expectCleanAfter(runs[index]!, [])
          expect(readdirSync(runs[index]!.home)).toEqual([])
          covered.add(`prompting/${command[0]}/${signal}`)
        }),
      )
    }
  })

  it('the choice between several management pods (shell in a terminal): 128+n, the terminal restored', async () => {
    const canary = await sandbox.addPod({ labels: { app: 'management-pod' }, deployment: 'management-pod-canary' })
    try {
      const runs = signals.map(() => nextRun(seeded))
      const asked = runs.map((run) => inTerminal(['shell'], run))
      await Promise.all(asked.map((terminal) => terminal.waitFor('Which one?')))
      await Promise.all(
        signals.map(async (signal, index) => {
          await signalInTerminal(asked[index]!, runs[index]!, signal, signalStatus[signal])
          await expectCleanAfter(runs[index]!)
          covered.add(`prompting/shell-choice/${signal}`)
        }),
      )
    } finally {
      await sandbox.deletePod(canary)
    }
  })
})

describe('in a session', () => {
  it('shell and ssh in a terminal: 128+n, the terminal restored, the remote command hung up', async () => {
    for (const command of [['shell'], ['ssh', '--port', '0']]) {
      const runs = signals.map(() => nextRun(seeded))
      const markers = signals.map(() => `sleep 86${unique()}.5`)
      const sessions = runs.map((run) => inTerminal(command, run))
      await Promise.all(
        sessions.map(async (terminal, index) => {
          await terminal.waitFor(/\$ $/m)
          terminal.type(`${markers[index]}\r`)
        }),
      )
      await until(() => markers.every((marker) => remoteProcesses(marker).length >= 1), 'the remote sleeps')
      await Promise.all(
        signals.map(async (signal, index) => {
          await signalInTerminal(sessions[index]!, runs[index]!, signal, signalStatus[signal])
          await expectRemoteGone(markers[index]!)
          await expectCleanAfter(runs[index]!)
          covered.add(`session/${command[0]}-tty/${signal}`)
        }),
      )
    }
  })

  it('ssh -- CMD without a terminal: 128+n, and the signal reaches the remote command', async () => {
    const markers = signals.map(() => `sleep 87${unique()}.5`)
    const runs = signals.map(() => nextRun(seeded))
    const sessions = signals.map((_, index) =>
      track(
        startCli(['ssh', '--no-tunnel', '--', `echo started; ${markers[index]}`], runs[index]!, { keepStdin: true }),
      ),
    )
    await Promise.all(sessions.map((session) => session.waitFor(/started/, { stream: 'stdout' })))
    await until(() => markers.every((marker) => remoteProcesses(marker).length >= 1), 'the remote sleeps')
    await Promise.all(
      signals.map(async (signal, index) => {
        sessions[index]!.kill(signal)
        expect(await sessions[index]!.status()).toBe(signalStatus[signal])
        expect(sessions[index]!.stderr).toBe('')
        await expectRemoteGone(markers[index]!)
        await expectCleanAfter(runs[index]!)
        covered.add(`session/ssh-cmd/${signal}`)
      }),
    )
  })

  it('proxy: 128+n, its stream closed at once; under ssh, the remote session hung up', async () => {
    const knownHosts = join(seeded.home, '.config', 'akm-access', 'known_hosts')
    for (const signal of signals) {
      // On its own: sshd's greeting on stdout says the stream is open.
      const run = nextRun(seeded)
      const proxy = track(startCli(['proxy'], run, { keepStdin: true }))
      await proxy.waitFor(/SSH-2\.0-OpenSSH/, { stream: 'stdout' })
      const streams = sandbox.streamCount()
      proxy.kill(signal)
      expect(await proxy.status()).toBe(signalStatus[signal])
      await until(() => sandbox.streamCount() < streams, 'the proxy stream to close', 5000)
      await expectCleanAfter(run)

      // As ssh's ProxyCommand, under a session: the session ends (ssh: 255) and the remote side is hung up.
      const underSsh = nextRun(seeded)
      const marker = `sleep 89${unique()}.5`
      const ssh = startProgram(
        'ssh',
        [
          '-F',
          'none',
          '-i',
          sandbox.userKey.path,
          ...strictHostKeyOptions(knownHosts, aliasOf(knownHosts)),
          '-o',
          `ProxyCommand=${process.execPath} ${cliPath} proxy`,
          '-tt',
          'akamas@management',
          `echo ready; ${marker}`,
        ],
        underSsh.env,
      )
      programs.push(ssh)
      await ssh.waitFor(/ready/, { stream: 'stdout' })
      const proxyPid = processesOf(underSsh.marker).find((info) => info.argv.includes('proxy'))?.pid
      expect(proxyPid).toBeDefined()
      process.kill(proxyPid!, signal)
      expect((await ssh.exited).code).toBe(255)
      await expectRemoteGone(marker)
      await expectCleanAfter(underSsh)
      covered.add(`session/proxy/${signal}`)
    }
  })

  it('forward with an ssh session through it: 0, the session cut at once, the port closed', async () => {
    const knownHosts = join(seeded.home, '.config', 'akm-access', 'known_hosts')
    await Promise.all(
      signals.map(async (signal) => {
        const run = nextRun(seeded)
        const forward = track(startCli(['forward', '--port', '0'], run))
        const port = Number((await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
        const marker = `sleep 88${unique()}.5`
        const session = startProgram('ssh', [
          '-F',
          'none',
          '-p',
          String(port),
          '-i',
          sandbox.userKey.path,
          ...strictHostKeyOptions(knownHosts, aliasOf(knownHosts)),
          '-tt',
          'akamas@127.0.0.1',
          `echo ready; ${marker}`,
        ])
        programs.push(session)
        await session.waitFor(/ready/, { stream: 'stdout' })
        forward.kill(signal)
        expect(await forward.status()).toBe(0)
        expect((await session.exited).code).toBe(255)
        expect(await portIsClosed(port)).toBe(true)
        await expectRemoteGone(marker)
        await expectCleanAfter(run)
        covered.add(`session/forward/${signal}`)
      }),
    )
  })
})

describe('the reader of stdout goes away (`akm-access … | head`)', () => {
  // What a shell pipeline expects of a writer whose reader left: to end, as if by SIGPIPE (141), at once, rather than
  // hang on a remote side that fills a window nobody drains (OpenSSH exits 255 here, kubectl 141).
  it('shell and ssh -- CMD: 141 at once; ssh passes SIGPIPE on to the remote command', async () => {
    for (const command of ['ssh', 'shell'] as const) {
      const marker = `akm-sig-yes-${unique()}`
      const script = `exec -a ${marker} yes`
      const run = nextRun(seeded)
      const args = command === 'ssh' ? ['ssh', '--no-tunnel', '--', script] : ['shell', '--', 'bash', '-c', script]
      const pipe = track(startCli(args, run))
      await until(() => pipe.stdoutBytes > 64 * 1024, 'output to flow')
      const closedAt = Date.now()
      pipe.child.stdout!.destroy() // as `head` does once it has enough
      expect({ command, status: await pipe.status() }, pipe.stderr).toEqual({ command, status: 141 })
      expect(Date.now() - closedAt).toBeLessThan(5000)
      expect(pipe.stderr).toBe('')
      if (command === 'ssh') await expectRemoteGone(marker)
      await expectCleanAfter(run)
      covered.add(`stdout-closed/${command}/SIGPIPE`)
    }
  })
})

describe('a client that stopped reading', () => {
  // A pod stream paused by backpressure never reads the API server's close frame: before the fix in
  // tunnel/pod-stream.ts, a signal to forward (or any stream destroyed while paused) held the process for ws's
  // 30 s close timeout. Now the close is bounded (a second at most).
  it('forward: a signal ends it within 3 s even with a connection whose client does not read', async () => {
    const chunk = Buffer.alloc(64 * 1024, 7)
    const firehose = createServer((socket) => {
      socket.on('error', () => {})
      const pump = () => {
        while (socket.write(chunk)) {}
      }
      socket.on('drain', pump)
      pump()
    })
    await new Promise<void>((resolve) => firehose.listen(0, '127.0.0.1', () => resolve()))
    const pod = await sandbox.addPod({ extraPorts: { 9000: (firehose.address() as AddressInfo).port } })
    try {
      for (const signal of signals) {
        const run = nextRun(seeded)
        const forward = track(startCli(['forward', '--port', '0', '--pod', pod, '--remote-port', '9000'], run))
        const port = Number((await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
        const client = createConnection({ host: '127.0.0.1', port })
        client.on('error', () => {})
        let received = 0
        await new Promise<void>((resolve) =>
          client.on('data', (data: Buffer) => {
            received += data.length
            // Enough to be sure that every buffer on the way is full once we stop.
            if (received < 8 * 1024 * 1024) return
            client.pause()
            resolve()
          }),
        )
        await new Promise((resolve) => setTimeout(resolve, 300))
        const signalledAt = Date.now()
        forward.kill(signal)
        expect(await forward.status()).toBe(0)
        expect(Date.now() - signalledAt, `forward took that long to end after ${signal}`).toBeLessThan(3000)
        client.destroy()
        await expectCleanAfter(run)
      }
    } finally {
      await sandbox.deletePod(pod)
      firehose.close()
    }
  })
})

describe('mid-transfer', () => {
  it('cp up and down: 128+n, "interrupted", no temporary file on either side', async () => {
    writeFileSync(join(sandbox.workDir, 'sig-down.bin'), Buffer.alloc(48 * MiB, 1))
    writeFileSync(join(local, 'sig-up.bin'), Buffer.alloc(48 * MiB, 2))
    sandbox.streamFaults.delayMs = 30
    for (const direction of ['upload', 'download'] as const) {
      await Promise.all(
        signals.map(async (signal) => {
          const run = nextRun(seeded)
          const dest = mkdtempSync(join(local, 'dest-'))
          const name = `sig-${direction}-${signal}.bin`
          const args =
            direction === 'upload' ? ['cp', join(local, 'sig-up.bin'), `:${name}`] : ['cp', ':sig-down.bin', `${dest}/`]
          const copy = track(startCli(args, run))
          const partIn = direction === 'upload' ? sandbox.workDir : dest
          const partName = direction === 'upload' ? `.${name}.akm-` : '.sig-down.bin.akm-'
          await until(() => readdirSync(partIn).some((entry) => entry.startsWith(partName)), 'the transfer to start')
          copy.kill(signal)
          expect({ direction, signal, status: await copy.status() }, copy.stderr).toEqual({
            direction,
            signal,
            status: signalStatus[signal],
          })
          expect(copy.stderr).toContain('interrupted: no partial file was left behind')
          expect(readdirSync(partIn).filter((entry) => entry.startsWith(partName))).toEqual([])
          expect(readdirSync(dest)).toEqual([])
          expect(readdirSync(sandbox.workDir)).not.toContain(name)
          await expectCleanAfter(run)
          covered.add(`transfer/cp-${direction}/${signal}`)
        }),
      )
    }
  })

  it('ssh and shell piping stdin to a remote command: 128+n, the remote command ended', async () => {
    for (const command of ['ssh', 'shell'] as const) {
      await Promise.all(
        signals.map(async (signal) => {
          const marker = `akm-sig-cat-${unique()}`
          const script = `exec -a ${marker} cat > /work/${marker}.bin`
          const args = command === 'ssh' ? ['ssh', '--no-tunnel', '--', script] : ['shell', '--', 'bash', '-c', script]
          const run = nextRun(seeded)
          const pipe = track(startCli(args, run, { keepStdin: true }))
          const chunk = Buffer.alloc(64 * 1024, 9)
          const pump = () => {
            while (pipe.child.stdin!.writable && pipe.child.stdin!.write(chunk)) {}
            if (pipe.child.stdin!.writable) pipe.child.stdin!.once('drain', pump)
          }
          pump()
          await until(() => remoteProcesses(marker).length === 1, 'the remote cat')
          await until(() => readdirSync(sandbox.workDir).includes(`${marker}.bin`), 'bytes to arrive')
          pipe.kill(signal)
          expect({ command, signal, status: await pipe.status() }, pipe.stderr).toEqual({
            command,
            signal,
            status: signalStatus[signal],
          })
          await expectRemoteGone(marker)
          await expectCleanAfter(run)
          covered.add(`transfer/${command}-pipe/${signal}`)
        }),
      )
    }
  })
})

function aliasOf(knownHosts: string): string {
  return execFileSync('cut', ['-d', ' ', '-f', '1', knownHosts], { encoding: 'utf8' }).trim()
}
