/**
 * Secret exposure. While every command runs, the SSH password, the private key (each of its lines) and the API
 * token must not be in the argv (/proc/PID/cmdline) or environment (/proc/PID/environ) of the CLI or of anything it
 * starts; not in any file it writes (except a file the user asked for, which must be mode 0600); not on stderr,
 * not with --debug, not in error messages. `password` prints the password on stdout, which is its purpose.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliPath, type Terminal } from '../helpers/cli.js'
import { type Running, startProgram, strictHostKeyOptions } from '../helpers/openssh.js'
import { Sandbox } from '../sandbox/index.js'
import {
  type CliRun,
  cliInTerminalWithModes,
  expectCleanAfter,
  fileLeaks,
  type Leak,
  nextRun,
  processesOf,
  processLeaks,
  type RunEnv,
  runEnv,
  runToEnd,
  secretsOf,
  startCli,
  textLeaks,
} from './harness.js'

let sandbox: Sandbox
let seeded: RunEnv
let secrets: string[]
const running: CliRun[] = []
const programs: Running[] = []
const terminals: Terminal[] = []
let checkedRuns = 0

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
  secrets = secretsOf(sandbox)
  seeded = runEnv(sandbox.kubeconfigPath)
  expect((await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], seeded)).status).toBe(0)
})
afterEach(() => {
  for (const process of running.splice(0)) process.kill()
  for (const program of programs.splice(0)) program.kill()
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
  console.log(`runs checked for secret exposure: ${checkedRuns}`)
})

/**
 * Scans the processes of a run every 20 ms while it lives (a run lasts 300 ms at the very least), collecting
 * leaks and how many of its processes were seen, so that "no leak" cannot mean "never looked".
 */
function watchProcesses(run: RunEnv, list: string[] = secrets): { stop(): { leaks: Leak[]; seen: number } } {
  const leaks: Leak[] = []
  const pids = new Set<number>()
  const scan = () => {
    for (const info of processesOf(run.marker)) pids.add(info.pid)
    leaks.push(...processLeaks(run, list))
  }
  scan()
  const timer = setInterval(scan, 20)
  return {
    stop() {
      clearInterval(timer)
      scan()
      return { leaks, seen: pids.size }
    },
  }
}

/** The whole check for one run: its processes while it ran, its files, and what it printed (but `allowedOut`). */
async function expectNothingLeaked(
  label: string,
  run: RunEnv,
  watched: { leaks: Leak[]; seen: number },
  printed: string,
  allowedFiles: string[] = [],
): Promise<void> {
  expect(watched.seen, `${label}: no process of the run was ever seen`).toBeGreaterThan(0)
  expect(watched.leaks, `${label}: argv/environment`).toEqual([])
  expect(fileLeaks([run.home, run.tmp], secrets, allowedFiles), `${label}: files`).toEqual([])
  expect(textLeaks(printed, secrets, label), `${label}: output`).toEqual([])
  checkedRuns++
}

async function runWatched(args: string[], run: RunEnv, input?: string) {
  const watcher = watchProcesses(run)
  const result = await runToEnd(args, run, input === undefined ? {} : { input })
  return { ...result, watched: watcher.stop() }
}

describe('commands that end by themselves', () => {
  it('password: the password only on stdout, the key only in the file asked for (0600)', async () => {
    const plain = await runWatched(['password'], nextRun(seeded))
    expect(plain.status).toBe(0)
    expect(plain.out.stdout).toBe(`${sandbox.password}\n`)
    await expectNothingLeaked('password', plain.out.run, plain.watched, plain.out.stderr)

    const json = await runWatched(['password', '--json'], nextRun(seeded))
    expect(json.status).toBe(0)
    await expectNothingLeaked('password --json', json.out.run, json.watched, json.out.stderr)

    const run = runEnv(sandbox.kubeconfigPath) // a HOME of its own: the key file stays in it
    const keyFile = join(run.home, 'akamas-key')
    const toFile = await runWatched(['password', '--key-file', keyFile], run)
    expect(toFile.status).toBe(0)
    await expectNothingLeaked('password --key-file', run, toFile.watched, toFile.out.stdout + toFile.out.stderr, [
      keyFile,
    ])
    await expectCleanAfter(run, [/^akamas-key$/])
  })

  it('ssh -- CMD, shell -- CMD, cp (both ways), sync and doctor', async () => {
    writeFileSync(join(sandbox.workDir, 'secret-scan.txt'), 'payload\n')
    const cases: string[][] = [
      ['ssh', '--no-tunnel', '--', 'echo ok'],
      ['ssh', '--no-tunnel', '--debug', '--', 'echo ok'],
      ['shell', '--', 'echo', 'ok'],
      ['shell', '--debug', '--', 'echo', 'ok'],
      ['cp', ':/work/secret-scan.txt', '{tmp}/'],
      ['cp', '--debug', '{tmp}/secret-scan.txt', ':/work/secret-scan-up.txt'],
      ['sync', '--debug', '{tmp}/', ':/work/secret-sync/'],
      ['doctor'],
      ['doctor', '--debug'],
    ]
    for (const template of cases) {
      const run = nextRun(seeded)
      writeFileSync(join(run.tmp, 'secret-scan.txt'), 'payload\n')
      const args = template.map((arg) => arg.replace('{tmp}', run.tmp))
      const result = await runWatched(args, run)
      expect({ args, status: result.status }, result.out.stderr).toEqual({ args, status: 0 })
      // cp/sync leave the copied file in TMPDIR on purpose here: it is not akm-access's, and holds no secret.
      await expectNothingLeaked(args.join(' '), run, result.watched, result.out.stdout + result.out.stderr)
    }
  })

  it('failures, with --debug: no secret in messages, diagnostics or stack traces', async () => {
    const failing: { args: string[]; arrange?: () => void; code: number }[] = [
      // sshd refuses the user: every credential was offered and failed.
      { args: ['ssh', '--no-tunnel', '--debug', '--user', 'root', '--', 'true'], code: 15 },
      // The API server fails, then a stream is cut mid-session.
      {
        args: ['ssh', '--no-tunnel', '--debug', '--', 'true'],
        arrange: () => (sandbox.apiFaults.failPaths = /\/pods$/),
        code: 1,
      },
      {
        args: ['ssh', '--no-tunnel', '--debug', '--', 'head -c 100000 /dev/zero; sleep 5'],
        arrange: () => (sandbox.streamFaults.dropAfterBytes = 5000),
        code: 255,
      },
      {
        args: ['cp', '--debug', ':/work/nope', '/tmp/'],
        code: 18,
      },
      // A Secret whose key is broken: the parser's complaint must not quote it.
      {
        args: ['ssh', '--no-tunnel', '--debug', '--secret', 'broken-key', '--', 'true'],
        arrange: () =>
          sandbox.setSecret('broken-key', {
            'ssh-privatekey': sandbox.userKey.privateKey.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!'),
          }),
        code: 12,
      },
    ]
    for (const { args, arrange, code } of failing) {
      arrange?.()
      const run = nextRun(seeded)
      const result = await runWatched(args, run)
      sandbox.clearFaults()
      expect({ args, status: result.status }, result.out.stderr).toEqual({ args, status: code })
      expect(result.out.stderr).toMatch(/^Error: /m)
      await expectNothingLeaked(args.join(' '), run, result.watched, result.out.stdout + result.out.stderr)
    }
  })
})

describe('commands that keep running', () => {
  it('ssh and shell sessions in a terminal, and the ssh tunnel: nothing in argv, environment or the screen', async () => {
    for (const args of [['ssh', '--port', '0'], ['shell']]) {
      const run = nextRun(seeded)
      const watcher = watchProcesses(run)
      const terminal = cliInTerminalWithModes(args, run)
      terminals.push(terminal)
      await terminal.waitFor(/\$ $/m)
      terminal.type('echo "in session"\r')
      await terminal.waitFor('in session')
      terminal.type('exit\r')
      await terminal.waitFor('modes-done')
      await expectNothingLeaked(args[0]!, run, watcher.stop(), terminal.output)
      await expectCleanAfter(run)
    }
  })

  it('forward serving a connection, and proxy carrying an OpenSSH session', async () => {
    const knownHosts = join(seeded.home, '.config', 'akm-access', 'known_hosts')
    const alias = execFileSync('cut', ['-d', ' ', '-f', '1', knownHosts], { encoding: 'utf8' }).trim()
    const sshOptions = ['-F', 'none', '-i', sandbox.userKey.path, ...strictHostKeyOptions(knownHosts, alias)]

    const run = nextRun(seeded)
    const watcher = watchProcesses(run)
    const forward = startCli(['forward', '--port', '0', '--verbose'], run)
    running.push(forward)
    const port = (await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1]!
    const session = startProgram('ssh', [...sshOptions, '-p', port, 'akamas@127.0.0.1', 'echo ready; sleep 30'])
    programs.push(session)
    await session.waitFor(/ready/, { stream: 'stdout' })
    forward.kill('SIGINT')
    await forward.status()
    await expectNothingLeaked('forward', run, watcher.stop(), forward.stdout + forward.stderr)

    const proxied = nextRun(seeded)
    const proxyWatcher = watchProcesses(proxied)
    const viaProxy = startProgram(
      'ssh',
      [
        ...sshOptions,
        '-o',
        `ProxyCommand=${process.execPath} ${cliPath} proxy --debug`,
        'akamas@pod',
        'echo ready; sleep 30',
      ],
      proxied.env,
    )
    programs.push(viaProxy)
    await viaProxy.waitFor(/ready/, { stream: 'stdout' })
    viaProxy.kill('SIGTERM')
    await viaProxy.exited
    await expectNothingLeaked('proxy', proxied, proxyWatcher.stop(), viaProxy.stderr)
  })
})

describe('a password-only installation', () => {
  let passwordOnly: Sandbox
  beforeAll(async () => {
    passwordOnly = await Sandbox.start({ credentials: 'password' })
  })
  afterAll(async () => {
    await passwordOnly?.stop()
  })

  it('ssh logs in with the password it never exposes, even with --debug', async () => {
    const own = [passwordOnly.password, passwordOnly.token]
    for (const args of [
      ['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'echo ok'],
      ['ssh', '--no-tunnel', '--debug', '--', 'echo ok'],
      ['ssh', '--no-tunnel', '--debug', '--user', 'root', '--', 'true'],
    ]) {
      const run = runEnv(passwordOnly.kubeconfigPath)
      if (args.includes('--debug')) {
        // Trust the key first, so that this run gets as far as authenticating.
        await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], run)
      }
      const watcher = watchProcesses(run, own)
      const result = await runToEnd(args, run)
      const watched = watcher.stop()
      expect(result.status, result.out.stderr).toBe(args.includes('root') ? 15 : 0)
      expect(watched.seen).toBeGreaterThan(0)
      expect(watched.leaks).toEqual([])
      expect(fileLeaks([run.home, run.tmp], own)).toEqual([])
      expect(textLeaks(result.out.stdout + result.out.stderr, own, args.join(' '))).toEqual([])
      checkedRuns++
    }
  })
})
