import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  cliEnv,
  cliInTerminal,
  cliInTerminalReportingModes,
  reportedExit,
  runCli,
  type Terminal,
} from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'

const execFileAsync = promisify(execFile)
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

let sandbox: Sandbox
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
})
afterEach(async () => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
})

/** A fresh HOME (so a fresh known_hosts) for each test that wants one. */
function freshEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color', ...extra })
}

function knownHostsOf(env: NodeJS.ProcessEnv): string {
  return join(env.HOME!, '.config', 'akm-access', 'known_hosts')
}

function sshInTerminal(args: string[], env: NodeJS.ProcessEnv, size = { cols: 100, rows: 30 }): Terminal {
  const terminal = cliInTerminal(['ssh', ...args], env, size)
  terminals.push(terminal)
  return terminal
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

describe('akm-access ssh', () => {
  it('asks to trust a new host key with its SHA256 fingerprint, stores it, then logs in silently', async () => {
    const env = freshEnv()
    const terminal = sshInTerminal(['--port', '0'], env)
    await terminal.waitFor(/key fingerprint is SHA256:[A-Za-z0-9+/]{43}\./)
    await terminal.waitFor('Are you sure you want to continue connecting?')
    terminal.type('y\r')
    await terminal.waitFor(/\$ $/m)
    terminal.type('echo "$(id -un)@$(hostname):$(pwd)"\r')
    await terminal.waitFor(`akamas@${sandbox.currentPodName}:/work`)
    terminal.type('exit 6\r')
    expect((await terminal.exit()).code).toBe(6)
    const stored = readFileSync(knownHostsOf(env), 'utf8')
    expect(stored).toContain(sandbox.hostKey.publicKey.split(' ')[1])
    expect(stored).toMatch(/^akm\/127\.0\.0\.1-\d+\/akamas\/management-pod ssh-ed25519 /)

    // The second time, no question: the key is known.
    const again = await runCli(['ssh', '--no-tunnel', '--', 'echo', 'known'], { env })
    expect(again).toMatchObject({ code: 0, stdout: 'known\n' })
    expect(again.stderr).not.toContain('authenticity')
  })

  it('refuses a new host key without a terminal unless --accept-new-host-key', async () => {
    const env = freshEnv()
    const refused = await runCli(['ssh', '--no-tunnel', '--', 'true'], { env })
    expect(refused.code).toBe(14)
    expect(refused.stderr).toMatch(/host key verification failed/)
    expect(refused.stderr).toMatch(/--accept-new-host-key/)
    const accepted = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    expect(accepted.code).toBe(0)
  })

  it('refuses a changed host key with OpenSSH’s warning, and forgets it on request', async () => {
    const env = freshEnv()
    expect((await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })).code).toBe(0)
    await sandbox.rollout({ newHostKey: true })
    const changed = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    expect(changed.code).toBe(14)
    expect(changed.stderr).toContain('WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!')
    expect(changed.stderr).toContain(`ssh-keygen -f '${knownHostsOf(env)}' -R 'akm/`)
    expect(changed.stderr).toMatch(/Error: the host key of management-pod-\S+ has changed/)
    const forgot = await runCli(['ssh', '--forget-host-key'], { env })
    expect(forgot.code).toBe(0)
    const after = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    expect(after.code).toBe(0)
  })

  it('returns the remote exit status of -- CMD and keeps stdout and stderr apart', async () => {
    const env = freshEnv()
    const result = await runCli(
      ['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'echo out; echo err >&2; exit 42'],
      { env },
    )
    expect(result).toMatchObject({ code: 42, stdout: 'out\n' })
    expect(result.stderr).toContain('err\n')
  })

  it('reports a remote command killed by a signal as 128+n', async () => {
    const env = freshEnv()
    const result = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'kill -TERM $$'], { env })
    expect(result.code).toBe(143)
  })

  it('pipes 8 MiB both ways byte for byte', async () => {
    const env = freshEnv()
    const data = randomBytes(8 * 1024 * 1024)
    const up = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'cat > /work/ssh-blob.bin'], {
      env,
      input: data,
      timeoutMs: 60_000,
    })
    expect(up.code).toBe(0)
    expect(sha256(sandbox.readWorkFile('ssh-blob.bin'))).toBe(sha256(data))
    const down = await runCli(['ssh', '--no-tunnel', '--', 'cat /work/ssh-blob.bin'], { env, timeoutMs: 60_000 })
    expect(down.code).toBe(0)
    expect(sha256(down.stdoutBuffer)).toBe(sha256(data))
  })

  it('follows terminal resizes and ends on ~.', async () => {
    const env = freshEnv()
    const terminal = sshInTerminal(['--port', '0', '--accept-new-host-key'], env, { cols: 90, rows: 25 })
    await terminal.waitFor(/\$ $/m)
    terminal.type('stty size\r')
    await terminal.waitFor('25 90')
    const mark = terminal.output.length
    terminal.resize(132, 43)
    await new Promise((resolve) => setTimeout(resolve, 200))
    terminal.type('stty size\r')
    await terminal.waitFor('43 132', { from: mark })
    terminal.type('\r~.')
    expect((await terminal.exit()).code).toBe(255)
    expect(terminal.output).toContain(`Connection to ${sandbox.currentPodName} closed.`)
  })

  it('falls back from a busy port 2222, says which port, and the tunnel serves scp while the session is open', async () => {
    const env = freshEnv()
    // Hold 2222 (if nobody else does already) so that the tunnel has to move.
    const blocker: Server = createServer()
    await new Promise<void>((resolve) =>
      blocker.once('error', () => resolve()).listen(2222, '127.0.0.1', () => resolve()),
    )
    try {
      const terminal = sshInTerminal(['--accept-new-host-key'], env)
      const shown = await terminal.waitFor(/tunnel: 127\.0\.0\.1:(\d+) -> management-pod-\S+:22/)
      expect(shown).toMatch(/port 2222 is busy; the tunnel uses \d+/)
      const port = Number(/tunnel: 127\.0\.0\.1:(\d+)/.exec(shown)![1])
      expect(port).not.toBe(2222)
      await terminal.waitFor(/\$ $/m)

      // A real scp from another process, through the tunnel, trusting the key akm-access stored.
      const alias = readFileSync(knownHostsOf(env), 'utf8').split(' ')[0]!
      const local = join(mkdtempSync(join(tmpdir(), 'akm-scp-')), 'up.bin')
      const payload = randomBytes(300_000)
      writeFileSync(local, payload)
      const sshOptions = [
        '-P',
        String(port),
        '-i',
        sandbox.userKey.path,
        '-o',
        'BatchMode=yes',
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        `UserKnownHostsFile=${knownHostsOf(env)}`,
        '-o',
        `HostKeyAlias=${alias}`,
      ]
      await execFileAsync('scp', [...sshOptions, local, 'akamas@127.0.0.1:/work/scp-up.bin'])
      expect(sha256(sandbox.readWorkFile('scp-up.bin'))).toBe(sha256(payload))

      terminal.type('exit\r')
      expect((await terminal.exit()).code).toBe(0)
      // Nothing is left listening.
      expect(await portIsClosed(port)).toBe(true)
    } finally {
      blocker.close()
    }
  })

  it('logs in with the password when the Secret holds no key', async () => {
    const passwordOnly = await Sandbox.start({ credentials: 'password' })
    try {
      const env = cliEnv(passwordOnly.kubeconfigPath)
      const result = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'id -un'], { env })
      expect(result).toMatchObject({ code: 0, stdout: 'akamas\n' })
    } finally {
      await passwordOnly.stop()
    }
  })

  it('exits 255 with a message when the pod is killed mid-session, with the terminal restored', async () => {
    const env = freshEnv()
    const wrapper = cliInTerminalReportingModes(['ssh', '--port', '0', '--accept-new-host-key'], env)
    terminals.push(wrapper)
    await wrapper.waitFor(/\$ $/m)
    await sandbox.deletePod(sandbox.currentPodName)
    await wrapper.waitFor('modes-done')
    expect(reportedExit(wrapper.output)).toEqual({ code: 255, restored: true })
    expect(wrapper.output).toMatch(/Error: the connection to the management pod was lost/)
    await sandbox.addPod()
  })
})
