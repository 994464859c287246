/**
 * Faults injected by the sandbox into shell, ssh, forward, proxy and cp: the API server failing (500), slow (past
 * --request-timeout), refusing credentials (401) or permission (403), a namespace or pod that does not exist (404),
 * a streaming upgrade refused, the WebSocket dropped mid-stream, the pod deleted mid-session, sshd down or reset, a
 * changed host key, and a local disk that is full or not writable. Each run must end with the documented exit code
 * (never 0), one `Error:` line and its `Hint:` (proxy: one line for ssh to show), the terminal restored where there
 * is one, and nothing left behind: no process, no listener, no temporary file (see harness.ts).
 */
import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { reportedExit, type Terminal } from '../helpers/cli.js'
import { run as runProgram, strictHostKeyOptions } from '../helpers/openssh.js'
import { Sandbox } from '../sandbox/index.js'
import { generateKeyPair } from '../sandbox/keys.js'
import {
  type CliRun,
  cliInTerminalWithModes,
  expectCleanAfter,
  expectError,
  expectProxyError,
  nextRun,
  portIsClosed,
  type RunEnv,
  runEnv,
  runToEnd,
  startCli,
} from './harness.js'

let sandbox: Sandbox
/** A HOME whose known_hosts trusts the pod's host key (as after a first `akm-access ssh`). */
let seeded: RunEnv
let local: string
const running: CliRun[] = []
const terminals: Terminal[] = []
const mounts: string[] = []
const MiB = 1024 * 1024

beforeAll(async () => {
  sandbox = await Sandbox.start()
  seeded = runEnv(sandbox.kubeconfigPath)
  const { status } = await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], seeded)
  expect(status).toBe(0)
  local = mkdtempSync(join(tmpdir(), 'akm-rel-faults-'))
  writeFileSync(join(sandbox.workDir, 'fault-src.txt'), 'fault source\n')
})
afterEach(async () => {
  for (const process of running.splice(0)) process.kill()
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
  sandbox.allowAll()
  // A test that deleted the pod or stopped sshd leaves a working one behind for the next.
  if (sandbox.podNames().length === 0) await sandbox.addPod()
  await sandbox.startSshd().catch(() => {})
})
afterAll(async () => {
  for (const mount of mounts) execFileSync('umount', ['-l', mount])
  await sandbox?.stop()
  rmSync(local, { recursive: true, force: true })
})

function track(process: CliRun): CliRun {
  running.push(process)
  return process
}

function inTerminal(args: string[], run: RunEnv): Terminal {
  const terminal = cliInTerminalWithModes(args, run)
  terminals.push(terminal)
  return terminal
}

/** A folder for one cp destination; nothing may be left in it after a failure. */
function destination(): string {
  return mkdtempSync(join(local, 'dest-'))
}

/** Resolves once a cp temporary file (`.NAME.akm-XXXXXX.part`) appears in `folder`. */
function temporaryFileIn(folder: string, timeoutMs = 20_000): Promise<void> {
  const present = () => readdirSync(folder).some((name) => name.endsWith('.part'))
  return new Promise((resolve, reject) => {
    if (present()) return resolve()
    const watcher = watch(folder, () => {
      if (!present()) return
      done()
      resolve()
    })
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no temporary file appeared in ${folder}`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      watcher.close()
    }
  })
}

const knownHostsOf = (run: RunEnv) => join(run.home, '.config', 'akm-access', 'known_hosts')

function sshThroughForwardOptions(port: number): string[] {
  const knownHosts = knownHostsOf(seeded)
  const alias = readFileSync(knownHosts, 'utf8').split(' ')[0]!
  return ['-F', 'none', '-p', String(port), '-i', sandbox.userKey.path, ...strictHostKeyOptions(knownHosts, alias)]
}

// ---- faults before any session: every command, every API failure ----

type Command = 'shell' | 'ssh' | 'forward' | 'proxy' | 'cp'
const commands: Command[] = ['shell', 'ssh', 'forward', 'proxy', 'cp']

/** The command line of each command for a start-up fault; `flags` go before `--`. */
function commandLine(command: Command, flags: string[], dest: string): string[] {
  switch (command) {
    case 'shell':
      return ['shell', ...flags, '--', 'true']
    case 'ssh':
      return ['ssh', '--no-tunnel', ...flags, '--', 'true']
    case 'forward':
      return ['forward', '--port', '0', '--pod-timeout', '0', ...flags]
    case 'proxy':
      return ['proxy', '--pod-timeout', '0', ...flags]
    case 'cp':
      return ['cp', ...flags, ':/work/fault-src.txt', `${dest}/`]
  }
}

interface StartupFault {
  name: string
  /** Sets the fault up; returns extra flags and env for the run. */
  arrange: () => { flags?: string[]; env?: NodeJS.ProcessEnv }
  code: number
  message: string | RegExp
  hint: string | RegExp
}

const startupFaults: StartupFault[] = [
  {
    name: 'the API server fails (500)',
    arrange: () => {
      sandbox.apiFaults.failPaths = /\/pods$/
      return {}
    },
    code: 1,
    message: 'the API server failed: Internal error occurred: sandbox fault injected',
    hint: 'this is an error inside the cluster; retry',
  },
  {
    name: 'the API server answers slower than --request-timeout',
    arrange: () => {
      sandbox.apiFaults.delayMs = 2500
      return { flags: ['--request-timeout', '1s'] }
    },
    code: 4,
    message: /the API server at 127\.0\.0\.1:\d+ did not answer within 1s/,
    hint: 'raise --request-timeout',
  },
  {
    name: 'the credentials are rejected (401)',
    arrange: () => ({ env: { KUBECONFIG: sandbox.writeKubeconfig({ token: 'revoked-token-value' }) } }),
    code: 6,
    message: 'the API server rejected the credentials of user "sandbox-user" (context "sandbox") (401 Unauthorized)',
    hint: 'may have expired or been revoked',
  },
  {
    name: 'RBAC forbids listing pods (403)',
    arrange: () => {
      sandbox.deny({ verb: 'list', resource: 'pods' })
      return {}
    },
    code: 7,
    message: 'you may not list pods in namespace akamas',
    hint: 'kubectl auth can-i list pods -n akamas',
  },
  {
    name: 'the namespace does not exist (404)',
    arrange: () => ({ flags: ['-n', 'no-such-namespace'] }),
    code: 8,
    message: 'namespace no-such-namespace not found',
    hint: 'pass the namespace of the Akamas installation with -n',
  },
  {
    name: 'the pod named with --pod does not exist (404)',
    arrange: () => ({ flags: ['--pod', 'no-such-pod'] }),
    code: 9,
    message: /no-such-pod/,
    hint: /\S/,
  },
]

describe('faults before a session: every command exits with the documented code, one line and a hint, and leaves nothing', () => {
  for (const fault of startupFaults) {
    it(`${fault.name}: exit ${fault.code}`, async () => {
      const { flags = [], env = {} } = fault.arrange()
      await Promise.all(
        commands.map(async (command) => {
          const run = nextRun(seeded, env)
          const dest = destination()
          const { status, out } = await runToEnd(commandLine(command, flags, dest), run)
          expect({ command, status }, out.stderr).toEqual({ command, status: fault.code })
          expect(out.stdout, `${command} printed on stdout`).toBe('')
          if (command === 'proxy') expectProxyError(out.stderr, fault.message)
          else expectError(out.stderr, { message: fault.message, hint: fault.hint })
          await expectCleanAfter(run)
          expect(readdirSync(dest), 'cp left something in its destination').toEqual([])
        }),
      )
    })
  }
})

// ---- streaming upgrades refused ----

describe('a streaming upgrade refused by the API server (or a proxy in front of it)', () => {
  it('shell, ssh and cp: exit 4, with what was refused and a hint about WebSocket upgrades', async () => {
    sandbox.apiFaults.refuseUpgrades = 'all'
    const lines: Record<string, string[]> = {
      shell: ['shell', '--', 'true'],
      ssh: ['ssh', '--no-tunnel', '--', 'true'],
      cp: ['cp', ':/work/fault-src.txt', `${destination()}/`],
    }
    for (const [command, args] of Object.entries(lines)) {
      const run = nextRun(seeded)
      const { status, out } = await runToEnd(args, run)
      expect({ command, status }, out.stderr).toEqual({ command, status: 4 })
      expectError(out.stderr, {
        message:
          /the API server refused to open the (exec|port-forward) connection to pod \S+ \(400\): sandbox fault: upgrade refused/,
        hint: 'may not pass WebSocket upgrades',
      })
      await expectCleanAfter(run)
    }
  })

  it('proxy: retries until --pod-timeout, then exit 4 on one line', async () => {
    sandbox.apiFaults.refuseUpgrades = 'portforward'
    const run = nextRun(seeded)
    const started = Date.now()
    const { status, out } = await runToEnd(['proxy', '--pod-timeout', '1500ms'], run)
    expect(status, out.stderr).toBe(4)
    expect(Date.now() - started).toBeLessThan(10_000)
    expectProxyError(out.stderr, /refused to open the port-forward connection .* upgrade refused/)
    await expectCleanAfter(run)
  })
})

// ---- the connection dropped mid-stream ----

describe('the WebSocket dropped mid-stream', () => {
  it('shell and ssh -- CMD: exit 255 (never 0), after the bytes that did arrive', async () => {
    for (const args of [
      ['shell', '--', 'sh', '-c', 'head -c 300000 /dev/zero; sleep 20'],
      ['ssh', '--no-tunnel', '--', 'head -c 300000 /dev/zero; sleep 20'],
    ]) {
      sandbox.streamFaults.dropAfterBytes = 100_000
      const run = nextRun(seeded)
      const { status, out } = await runToEnd(args, run)
      expect({ command: args[0], status }, out.stderr).toEqual({ command: args[0], status: 255 })
      expect(out.stdoutBytes).toBeGreaterThan(0)
      expectError(out.stderr, {
        message: /the connection to the (management )?pod was lost/,
        hint: 'run the command again',
      })
      await expectCleanAfter(run)
    }
  })

  it('shell and ssh in a terminal: exit 255 and the terminal restored', async () => {
    for (const args of [['shell'], ['ssh', '--port', '0']]) {
      const run = nextRun(seeded)
      const terminal = inTerminal(args, run)
      await terminal.waitFor(/\$ $/m)
      sandbox.streamFaults.dropAfterBytes = 1
      terminal.type('echo trigger-output\r')
      await terminal.waitFor('modes-done')
      sandbox.clearFaults()
      expect(reportedExit(terminal.output), terminal.output).toEqual({ code: 255, restored: true })
      expectError(terminal.output.slice(0, terminal.output.indexOf('exit=')), {
        message: /the connection to the (management )?pod was lost/,
        hint: 'run the command again',
      })
      await expectCleanAfter(run)
    }
  })

  it('proxy: exit 255 with one line for ssh to show', async () => {
    sandbox.streamFaults.dropAfterBytes = 10
    const run = nextRun(seeded)
    const proxy = track(startCli(['proxy'], run, { keepStdin: true }))
    expect(await proxy.status()).toBe(255)
    expectProxyError(proxy.stderr, /port-forward to \S+:22: the port-forward connection was lost/)
    await expectCleanAfter(run)
  })

  it('cp download: exit 255 and no partial file at the destination', async () => {
    writeFileSync(join(sandbox.workDir, 'drop.bin'), Buffer.alloc(8 * MiB, 3))
    sandbox.streamFaults.dropAfterBytes = 2 * MiB
    const run = nextRun(seeded)
    const dest = destination()
    const { status, out } = await runToEnd(['cp', ':drop.bin', `${dest}/`], run)
    expect(status, out.stderr).toBe(255)
    expectError(out.stderr, { message: /the connection to pod \S+ was lost/, hint: 'run the command again' })
    expect(readdirSync(dest)).toEqual([])
    await expectCleanAfter(run)
  })
})

// ---- the pod deleted mid-session ----

describe('the pod deleted mid-session', () => {
  it('shell in a terminal: exit 255, the terminal restored', async () => {
    const run = nextRun(seeded)
    const terminal = inTerminal(['shell'], run)
    await terminal.waitFor(/\$ $/m)
    await sandbox.deletePod(sandbox.currentPodName)
    await terminal.waitFor('modes-done')
    expect(reportedExit(terminal.output), terminal.output).toEqual({ code: 255, restored: true })
    expect(terminal.output).toMatch(/Error: the connection to the pod was lost/)
    expect(terminal.output).toMatch(/Hint: the pod may have been restarted or evicted/)
    await expectCleanAfter(run)
  })

  it('shell and ssh -- CMD on pipes: exit 255', async () => {
    for (const args of [
      ['shell', '--', 'sh', '-c', 'echo started; sleep 30'],
      ['ssh', '--no-tunnel', '--', 'echo started; sleep 30'],
    ]) {
      const run = nextRun(seeded)
      const process = track(startCli(args, run))
      await process.waitFor(/started/, { stream: 'stdout' })
      await sandbox.deletePod(sandbox.currentPodName)
      expect(await process.status(), process.stderr).toBe(255)
      expectError(process.stderr, { message: /the connection to the (management )?pod was lost/, hint: /\S/ })
      await expectCleanAfter(run)
      await sandbox.addPod()
    }
  })

  it('proxy: exit 255 on one line naming the pod', async () => {
    const run = nextRun(seeded)
    const proxy = track(startCli(['proxy'], run, { keepStdin: true }))
    await proxy.waitFor(/SSH-2\.0-OpenSSH/, { stream: 'stdout' })
    const pod = sandbox.currentPodName
    await sandbox.deletePod(pod)
    expect(await proxy.status()).toBe(255)
    expectProxyError(proxy.stderr, new RegExp(`port-forward to ${pod}:22: .*lost`))
    await expectCleanAfter(run)
  })

  it('cp upload and download: exit 255, nothing half-written under the real names', async () => {
    writeFileSync(join(sandbox.workDir, 'slow-down.bin'), Buffer.alloc(32 * MiB, 5))
    writeFileSync(join(local, 'slow-up.bin'), Buffer.alloc(32 * MiB, 6))
    for (const direction of ['download', 'upload'] as const) {
      // Slowed down so that the deletion lands mid-transfer.
      sandbox.streamFaults.delayMs = 20
      const run = nextRun(seeded)
      const dest = destination()
      const args =
        direction === 'download'
          ? ['cp', ':slow-down.bin', `${dest}/`]
          : ['cp', join(local, 'slow-up.bin'), ':up-cut.bin']
      const process = track(startCli(args, run))
      // Mid-transfer: once the temporary file exists at the destination.
      await temporaryFileIn(direction === 'download' ? dest : sandbox.workDir)
      await sandbox.deletePod(sandbox.currentPodName)
      expect({ direction, status: await process.status(30_000) }, process.stderr).toEqual({ direction, status: 255 })
      expectError(process.stderr, { message: /the connection to pod \S+ was lost/, hint: 'run the command again' })
      expect(readdirSync(dest)).toEqual([])
      expect(readdirSync(sandbox.workDir)).not.toContain('up-cut.bin')
      await expectCleanAfter(run)
      sandbox.clearFaults()
      await sandbox.addPod()
    }
  })
})

// ---- sshd down, reset, or with another host key ----

describe('sshd down or reset, and a changed host key', () => {
  it('sshd down: ssh and cp exit 16, saying that nothing listens on port 22', async () => {
    await sandbox.stopSshd()
    for (const args of [
      ['ssh', '--no-tunnel', '--', 'true'],
      ['cp', ':/work/fault-src.txt', `${destination()}/`],
    ]) {
      const run = nextRun(seeded)
      const { status, out } = await runToEnd(args, run)
      expect({ command: args[0], status }, out.stderr).toEqual({ command: args[0], status: 16 })
      expectError(out.stderr, {
        message: /port-forward to \S+:22: .*ECONNREFUSED/,
        hint: 'is anything listening on port 22 in the pod?',
      })
      await expectCleanAfter(run)
    }
  })

  it('sshd down: proxy exits 16 on one line', async () => {
    await sandbox.stopSshd()
    const run = nextRun(seeded)
    const proxy = track(startCli(['proxy'], run, { keepStdin: true }))
    expect(await proxy.status(), proxy.stderr).toBe(16)
    expectProxyError(proxy.stderr, /port-forward to \S+:22: .*ECONNREFUSED .*is anything listening on port 22/)
    await expectCleanAfter(run)
  })

  it('sshd reset mid-session: ssh exits 255 with the terminal restored', async () => {
    const run = nextRun(seeded)
    const terminal = inTerminal(['ssh', '--port', '0'], run)
    await terminal.waitFor(/\$ $/m)
    await sandbox.stopSshd()
    await terminal.waitFor('modes-done')
    expect(reportedExit(terminal.output), terminal.output).toEqual({ code: 255, restored: true })
    expect(terminal.output).toMatch(/Error: the connection to the management pod was lost/)
    await expectCleanAfter(run)
  })

  it('a changed host key: ssh and cp exit 14 with OpenSSH’s warning, and send no credentials', async () => {
    // known_hosts names the pod's alias with another key: what a man in the middle (or new host keys) looks like.
    const other = generateKeyPair(mkdtempSync(join(tmpdir(), 'akm-rel-key-')), 'other-host', 'ed25519')
    const forged = runEnv(sandbox.kubeconfigPath)
    const [alias] = readFileSync(knownHostsOf(seeded), 'utf8').split(' ')
    mkdirSync(join(forged.home, '.config', 'akm-access'), { recursive: true })
    writeFileSync(knownHostsOf(forged), `${alias} ${other.publicKey}\n`)
    for (const args of [
      ['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'],
      ['cp', '--accept-new-host-key', ':/work/fault-src.txt', `${destination()}/`],
    ]) {
      const run = nextRun(forged)
      const { status, out } = await runToEnd(args, run)
      expect({ command: args[0], status }, out.stderr).toEqual({ command: args[0], status: 14 })
      expect(out.stderr).toContain('WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!')
      expectError(out.stderr, { message: /the host key of management-pod-\S+ has changed/, hint: '--forget-host-key' })
      await expectCleanAfter(run)
    }
  })
})

// ---- the local side of cp ----

describe('cp: the local disk full, or a folder it may not write', () => {
  it('disk full: exit 17 and no temporary file', async () => {
    const small = join(local, 'small-disk')
    mkdirSync(small)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small])
    mounts.push(small)
    writeFileSync(join(sandbox.workDir, 'three-mib.bin'), Buffer.alloc(3 * MiB, 7))
    const run = nextRun(seeded)
    const { status, out } = await runToEnd(['cp', ':three-mib.bin', `${small}/`], run)
    expect(status, out.stderr).toBe(17)
    expectError(out.stderr, { message: /no space left on the local disk/, hint: 'free some space' })
    expect(readdirSync(small)).toEqual([])
    await expectCleanAfter(run)
  })

  it('permission denied: exit 17 and nothing written (run as nobody)', async () => {
    const home = mkdtempSync(join(tmpdir(), 'akm-rel-nobody-'))
    mkdirSync(join(home, '.config', 'akm-access'), { recursive: true })
    writeFileSync(join(home, 'kubeconfig'), readFileSync(sandbox.kubeconfigPath))
    writeFileSync(join(home, '.config', 'akm-access', 'known_hosts'), readFileSync(knownHostsOf(seeded)))
    execFileSync('chown', ['-R', 'nobody:nogroup', home])
    const run = nextRun(seeded, { HOME: home, KUBECONFIG: join(home, 'kubeconfig') })
    chownSync(run.tmp, 65534, 65534)
    const readOnly = mkdtempSync(join(tmpdir(), 'akm-rel-ro-'))
    chmodSync(readOnly, 0o755) // root's: nobody may look in, not write
    const asNobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath]
    const result = await runProgram(
      asNobody[0]!,
      [...asNobody.slice(1), join(process.cwd(), 'bin', 'run.js'), 'cp', ':/work/fault-src.txt', `${readOnly}/`],
      {
        env: run.env,
      },
    )
    expect(result.code, result.stderr).toBe(17)
    expectError(result.stderr, {
      message: `cannot create a file in ${readOnly}: permission denied`,
      hint: /permissions/,
    })
    expect(readdirSync(readOnly)).toEqual([])
    await expectCleanAfter({ ...run, home }, [/^kubeconfig$/])
  })
})

// ---- forward keeps serving through every fault, and fails each connection fast ----

describe('forward through faults', () => {
  it('cuts or refuses the affected connections fast, keeps listening, serves again once the fault is gone', async () => {
    const run = nextRun(seeded)
    const forward = track(startCli(['forward', '--port', '0', '--pod-timeout', '2s'], run))
    const port = Number((await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
    const options = sshThroughForwardOptions(port)
    const ssh = (command: string) => runProgram('ssh', [...options, 'akamas@127.0.0.1', command], { timeoutMs: 20_000 })
    const works = async () => {
      const result = await ssh('hostname')
      expect(result.stdout.toString(), result.stderr).toBe(`${sandbox.currentPodName}\n`)
    }
    /** A connection hit by the fault ends fast with ssh's 255, and forward is still there. */
    const failsFast = async (command: string, withinMs: number) => {
      const started = Date.now()
      const result = await ssh(command)
      expect(result.code, result.stderr).toBe(255)
      expect(Date.now() - started).toBeLessThan(withinMs)
      expect(forward.child.exitCode).toBeNull()
    }
    await works()

    sandbox.streamFaults.dropAfterBytes = 200_000
    await failsFast('head -c 2000000 /dev/zero', 10_000)
    sandbox.clearFaults()
    await works()

    sandbox.apiFaults.refuseUpgrades = 'portforward'
    await failsFast('true', 10_000) // retried for --pod-timeout (2 s), then refused
    expect(forward.stderr).toMatch(/#\d+ refused: the API server refused to open the port-forward connection/)
    sandbox.clearFaults()
    await works()

    await sandbox.stopSshd()
    await failsFast('true', 10_000)
    await sandbox.startSshd()
    await works()

    // The API failing while forward serves: the pod it knows still takes connections.
    sandbox.apiFaults.failPaths = /\/pods$/
    await works()
    sandbox.clearFaults()

    // The pod deleted under an open session: cut at once; the next connection goes to its replacement.
    const open = runProgram('ssh', [...options, 'akamas@127.0.0.1', 'echo ready; exec sleep 60'], { timeoutMs: 20_000 })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const deletedAt = Date.now()
    await sandbox.deletePod(sandbox.currentPodName)
    expect((await open).code).toBe(255)
    expect(Date.now() - deletedAt).toBeLessThan(5_000)
    await sandbox.addPod()
    await works()

    forward.kill('SIGINT')
    expect(await forward.status()).toBe(0)
    expect(await portIsClosed(port)).toBe(true)
    await expectCleanAfter(run)
  }, 90_000)
})
