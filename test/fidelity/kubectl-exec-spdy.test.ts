/**
 * Fidelity of exec over SPDY/3.1 (the kubelet's remotecommand protocol, v4), proven with the real kubectl with its
 * WebSocket executor turned off (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false): stdin and its EOF, stdout and stderr as
 * separate streams, the exit code from the v4 status, 4 MiB byte-exact, an interactive bash with resizes, and a
 * clean end of the SPDY connection.
 */
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { KUBECTL, Scratch } from './kubectl.js'

let sandbox: Sandbox
let scratch: Scratch
const SPDY_ONLY = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' }

beforeAll(async () => {
  sandbox = await Sandbox.start()
  scratch = new Scratch()
})
afterEach(async () => {
  sandbox.clearFaults()
  await scratch.killAll()
})
afterAll(async () => {
  await scratch?.cleanup()
  await sandbox?.stop()
})

const kubectl = (args: string[], options: Parameters<Scratch['kubectl']>[2] = {}) =>
  scratch.kubectl(sandbox.kubeconfigPath, args, { ...options, env: { ...SPDY_ONLY, ...options.env } })
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

function execUpgrades(from: number): string[] {
  return sandbox.requests
    .slice(from)
    .filter((record) => /\/pods\/[^/]+\/exec\?/.test(record.path))
    .map((record) => `${record.method} ${record.upgrade ?? '-'}`)
}

describe('kubectl exec over SPDY (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)', () => {
  it('carries stdin (with EOF), stdout and stderr apart, and exit code 5', async () => {
    const from = sandbox.requests.length
    const result = await kubectl(
      ['exec', '-i', 'deploy/management-pod', '--', 'sh', '-c', 'cat; echo to-err >&2; exit 5'],
      { input: 'hello-stdin\n' },
    )
    expect(result.stdout).toBe('hello-stdin\n')
    expect(result.stderr).toBe('to-err\ncommand terminated with exit code 5\n')
    expect(result.code).toBe(5)
    expect(execUpgrades(from)).toEqual(['POST SPDY/3.1'])
  })

  it('succeeds with exit code 0 and nothing on stderr', async () => {
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'sh', '-c', 'echo "in $(pwd) on $(hostname)"'])
    expect(result).toMatchObject({ code: 0, stderr: '', stdout: `in /work on ${sandbox.currentPodName}\n` })
  })

  it('carries a 4 MiB binary through exec -i … cat byte-exact (no SPDY flow control to stall on)', async () => {
    const payload = randomBytes(4 * 1024 * 1024)
    const result = await kubectl(['exec', '-i', 'deploy/management-pod', '--', 'cat'], { input: payload })
    expect(result.code).toBe(0)
    expect(result.stdoutBuffer.length).toBe(payload.length)
    expect(sha256(result.stdoutBuffer)).toBe(sha256(payload))
  })

  it('delivers 4 MiB of output that ends right before the exit (nothing lost at the close)', async () => {
    const result = await kubectl([
      'exec',
      'deploy/management-pod',
      '--',
      'sh',
      '-c',
      'head -c 4194304 /dev/zero | tr "\\0" "x"; echo tail-marker; exit 9',
    ])
    expect(result.code).toBe(9)
    expect(result.stdoutBuffer.length).toBe(4 * 1024 * 1024 + 'tail-marker\n'.length)
    expect(result.stdout.endsWith('xtail-marker\n')).toBe(true)
  })

  it('runs an interactive bash in a real terminal, with the resize stream', async () => {
    const from = sandbox.requests.length
    const terminal = scratch.terminal(
      [KUBECTL, '--cache-dir', scratch.cacheDir(), 'exec', '-it', sandbox.currentPodName, '--', 'bash'],
      scratch.env(sandbox.kubeconfigPath, { TERM: 'xterm', ...SPDY_ONLY }),
      { cols: 88, rows: 26 },
    )
    await terminal.waitFor(/\$ $/m)
    terminal.type('echo "spdy-$((6*7))"; stty size\r')
    await terminal.waitFor('spdy-42')
    await terminal.waitFor('26 88')
    terminal.resize(132, 43)
    let resized = false
    for (let attempt = 0; attempt < 50 && !resized; attempt++) {
      const before = terminal.output.length
      terminal.type('stty size\r')
      await terminal.waitFor(/\d+ \d+\r?\n.*\$ $/s, { from: before })
      resized = terminal.output.slice(before).includes('43 132')
    }
    expect(resized).toBe(true)
    terminal.type('exit 4\r')
    expect(await terminal.exit()).toEqual({ code: 4, signal: null })
    expect(terminal.output).toContain('command terminated with exit code 4')
    expect(execUpgrades(from)).toEqual(['POST SPDY/3.1'])
  })

  it('ends the SPDY connection once kubectl is done: no stream is left open on the server', async () => {
    // The previous test's session ends asynchronously on the server side: start from a quiet pod.
    await vi.waitFor(() => expect(sandbox.streamCount(sandbox.currentPodName)).toBe(0), { timeout: 5000 })
    const running = kubectl(['exec', 'deploy/management-pod', '--', 'sleep', '1'])
    await vi.waitFor(() => expect(sandbox.streamCount(sandbox.currentPodName)).toBe(1), { timeout: 5000, interval: 10 })
    expect((await running).code).toBe(0)
    await vi.waitFor(() => expect(sandbox.streamCount(sandbox.currentPodName)).toBe(0), { timeout: 5000 })
  })

  it('a bad container is refused before the upgrade with the same Status as over WebSocket', async () => {
    const result = await kubectl(['exec', 'deploy/management-pod', '-c', 'nope', '--', 'true'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      `Error from server (BadRequest): container nope is not valid for pod ${sandbox.currentPodName}`,
    )
  })

  it('a connection cut mid-stream (dropAfterBytes): kubectl’s SPDY client takes the EOF for a success', async () => {
    // A weakness of client-go's SPDY executor, not of the sandbox: when the connection drops, every stream reads
    // EOF, an empty error stream means success, and kubectl exits 0 with the output cut short. (Over WebSocket the
    // same cut is a close without 1000, and kubectl fails.)
    sandbox.streamFaults.dropAfterBytes = 64 * 1024
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'sh', '-c', 'head -c 1048576 /dev/zero'])
    expect(result.code).toBe(0)
    expect(result.stdoutBuffer.length).toBeLessThanOrEqual(64 * 1024)
    const overWebSocket = await scratch.kubectl(sandbox.kubeconfigPath, [
      'exec',
      'deploy/management-pod',
      '--',
      'sh',
      '-c',
      'head -c 1048576 /dev/zero',
    ])
    expect(overWebSocket.code).toBe(1)
    expect(overWebSocket.stdoutBuffer.length).toBeLessThanOrEqual(64 * 1024)
    expect(overWebSocket.stderr).toContain('close 1006 (abnormal closure)')
  })
})
