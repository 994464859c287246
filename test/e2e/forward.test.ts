import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, runCli } from '../helpers/cli.js'
import {
  concurrentEchoSessions,
  type Running,
  run,
  sha256,
  startCli,
  startProgram,
  strictHostKeyOptions,
} from '../helpers/openssh.js'
import { Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
const running: Running[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
})
afterEach(() => {
  for (const process of running.splice(0)) process.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
})

/** A fresh HOME whose known_hosts holds the pod's key, stored by akm-access itself (ssh --accept-new-host-key). */
async function seededEnv(): Promise<{ env: NodeJS.ProcessEnv; knownHosts: string; alias: string }> {
  const env = cliEnv(sandbox.kubeconfigPath)
  const seeded = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
  expect(seeded.code).toBe(0)
  const knownHosts = join(env.HOME!, '.config', 'akm-access', 'known_hosts')
  return { env, knownHosts, alias: readFileSync(knownHosts, 'utf8').split(' ')[0]! }
}

function forward(args: string[], env: NodeJS.ProcessEnv): Running {
  const process = startCli(['forward', ...args], env)
  running.push(process)
  return process
}

async function forwardedPort(process: Running): Promise<number> {
  const match = await process.waitFor(/Forwarding from 127\.0\.0\.1:(\d+) -> (\S+):22/, { stream: 'stdout' })
  return Number(match[1])
}

function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

describe('akm-access forward', () => {
  it('prints the port and an ssh line that works, serves ssh, scp, sftp and rsync, and ends on Ctrl-C with 0', async () => {
    const { env } = await seededEnv()
    const tunnel = forward(['--port', '0', '--verbose'], env)
    const port = await forwardedPort(tunnel)
    const example = await tunnel.waitFor(
      /Connect with: ssh (-p \d+ -o HostKeyAlias=\S+ -o UserKnownHostsFile=\S+) (\S+)/,
    )
    expect(example[1]).toContain(`-p ${port} -o HostKeyAlias=akm/127.0.0.1-`)
    expect(example[2]).toBe('akamas@127.0.0.1')

    // The line as printed, plus the key: the host key is trusted through the alias, strictly.
    const printed = example[1]!.split(' ')
    const key = ['-i', sandbox.userKey.path, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes']
    const ssh = await run('ssh', ['-F', 'none', ...printed, ...key, 'akamas@127.0.0.1', 'hostname; exit 3'])
    expect(ssh.code).toBe(3)
    expect(ssh.stdout.toString()).toBe(`${sandbox.currentPodName}\n`)

    const scpOptions = ['-F', 'none', '-P', String(port), ...printed.slice(2), ...key]
    const dir = mkdtempSync(join(tmpdir(), 'akm-fwd-'))
    const payload = randomBytes(3 * 1024 * 1024)
    writeFileSync(join(dir, 'up.bin'), payload)
    expect((await run('scp', [...scpOptions, join(dir, 'up.bin'), 'akamas@127.0.0.1:/work/fwd-up.bin'])).code).toBe(0)
    expect(sha256(sandbox.readWorkFile('fwd-up.bin'))).toBe(sha256(payload))

    const sftp = await run('sftp', [...scpOptions, '-b', '-', 'akamas@127.0.0.1'], {
      input: `get /work/fwd-up.bin ${join(dir, 'down.bin')}\n`,
    })
    expect(sftp.code).toBe(0)
    expect(sha256(readFileSync(join(dir, 'down.bin')))).toBe(sha256(payload))

    mkdirSync(join(dir, 'tree', 'sub'), { recursive: true })
    writeFileSync(join(dir, 'tree', 'a.txt'), 'alpha\n')
    writeFileSync(join(dir, 'tree', 'sub', 'b.bin'), payload.subarray(0, 100_000))
    const rsync = await run('rsync', [
      '-a',
      '-e',
      ['ssh', '-F', 'none', ...printed, ...key].join(' '),
      `${join(dir, 'tree')}/`,
      'akamas@127.0.0.1:/work/fwd-tree/',
    ])
    expect(rsync).toMatchObject({ code: 0 })
    expect(sandbox.readWorkFile('fwd-tree/a.txt').toString()).toBe('alpha\n')
    expect(sha256(sandbox.readWorkFile('fwd-tree/sub/b.bin'))).toBe(sha256(payload.subarray(0, 100_000)))

    // --verbose: each connection, with its pod, and how much went each way.
    expect(tunnel.stderr).toMatch(new RegExp(`#1 127\\.0\\.0\\.1:\\d+ -> ${sandbox.currentPodName} open`))
    expect(tunnel.stderr).toMatch(/#1 closed after \d+\.\d s \(sent [\d.]+ KiB, received [\d.]+ KiB\)/)

    tunnel.kill('SIGINT')
    expect(await tunnel.exited).toEqual({ code: 0, signal: null })
    expect(await portIsClosed(port)).toBe(true)
    // Nothing but the "Forwarding from" line on stdout.
    expect(tunnel.stdout.trim().split('\n')).toHaveLength(1)
  })

  it('takes another port when the preferred one is busy, and says so', async () => {
    const { env } = await seededEnv()
    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()))
    const busy = (blocker.address() as { port: number }).port
    try {
      const tunnel = forward(['--port', String(busy)], env)
      const port = await forwardedPort(tunnel)
      expect(port).not.toBe(busy)
      expect(tunnel.stderr).toContain(`port ${busy} is busy; forwarding from ${port} instead`)
      tunnel.kill('SIGTERM')
      expect((await tunnel.exited).code).toBe(0)
    } finally {
      blocker.close()
    }
  })

  it('fails at once with the reason when there is no management pod and --pod-timeout is 0', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const started = Date.now()
    const result = await runCli(['forward', '--port', '0', '-n', 'default', '--pod-timeout', '0'], { env })
    expect(result.code).toBe(9)
    expect(result.stderr).toMatch(/no management pod in namespace default/)
    expect(result.stdout).toBe('')
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('follows the pod across a rollout, an eviction and another rollout, with 100 concurrent sessions checked each time', async () => {
    const { env, knownHosts, alias } = await seededEnv()
    const tunnel = forward(['--port', '0', '--verbose'], env)
    const port = await forwardedPort(tunnel)
    const sshOptions = ['-i', sandbox.userKey.path, ...strictHostKeyOptions(knownHosts, alias)]
    const sshTo = (command: string) =>
      run('ssh', ['-F', 'none', '-p', String(port), ...sshOptions, 'akamas@127.0.0.1', command])
    const round = async (expectedPod: string) => {
      const result = await concurrentEchoSessions({ count: 100, bytes: 64 * 1024, port, sshOptions })
      expect(result.failures).toEqual([])
      expect(result.peak).toBe(100)
      expect([...result.hosts]).toEqual([expectedPod])
    }

    await round(sandbox.currentPodName)

    // 1. A rollout. A session open on the old pod is cut at once (no hang); new ones reach the new pod.
    const oldPod = sandbox.currentPodName
    const openSession = startLong(port, sshOptions)
    await openSession.waitFor(/ready/, { stream: 'stdout' })
    const { newPod: second } = await sandbox.rollout()
    const cutAt = Date.now()
    expect((await openSession.exited).code).toBe(255)
    expect(Date.now() - cutAt).toBeLessThan(5_000)
    expect((await sshTo('hostname')).stdout.toString()).toBe(`${second}\n`)
    await tunnel.waitFor(new RegExp(`the management pod is now ${second} \\(was ${oldPod}\\)`))
    await round(second)

    // 2. An eviction: the pod goes first, its replacement comes later. A connection made in between waits for it.
    await sandbox.deletePod(second)
    const during = sshTo('hostname')
    await tunnel.waitFor(/waiting for a ready management pod/)
    const third = await sandbox.addPod()
    const waited = await during
    expect(waited.stderr).toBe('')
    expect(waited.stdout.toString()).toBe(`${third}\n`)
    await round(third)

    // 3. Another rollout, with no connection open to notice it: the next one finds the new pod by itself.
    const { newPod: fourth } = await sandbox.rollout()
    expect((await sshTo('hostname')).stdout.toString()).toBe(`${fourth}\n`)
    await round(fourth)

    // sshd crashing inside the same pod: connections fail fast, then work again once it is back.
    await sandbox.stopSshd(fourth)
    const refusedAt = Date.now()
    const refused = await sshTo('true')
    expect(refused.code).toBe(255)
    expect(Date.now() - refusedAt).toBeLessThan(5_000)
    await sandbox.startSshd(fourth)
    expect((await sshTo('hostname')).stdout.toString()).toBe(`${fourth}\n`)

    tunnel.kill('SIGINT')
    expect((await tunnel.exited).code).toBe(0)
    expect(await portIsClosed(port)).toBe(true)
  }, 240_000)
})

/** An ssh session through the tunnel that stays open (cat) until cut. */
function startLong(port: number, sshOptions: string[]): Running {
  const process = startProgram('ssh', [
    '-F',
    'none',
    '-p',
    String(port),
    ...sshOptions,
    'akamas@127.0.0.1',
    'echo ready; exec cat',
  ])
  running.push(process)
  return process
}
