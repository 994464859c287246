/**
 * Fidelity of exec over WebSocket (v5.channel.k8s.io), kubectl 1.32's first choice, proven with the real kubectl:
 * separate stdout and stderr, exit codes, stdin and its EOF, a 4 MiB binary round trip, an interactive bash in a
 * real pseudo-terminal with resizes, and the error paths (bad container, RBAC) with kubectl's SPDY retry.
 */
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { KUBECTL, Scratch } from './kubectl.js'

let sandbox: Sandbox
let scratch: Scratch

beforeAll(async () => {
  sandbox = await Sandbox.start()
  scratch = new Scratch()
})
afterEach(async () => {
  sandbox.allowAll()
  sandbox.clearFaults()
  await scratch.killAll()
})
afterAll(async () => {
  await scratch?.cleanup()
  await sandbox?.stop()
})

const kubectl = (args: string[], options: Parameters<Scratch['kubectl']>[2] = {}) =>
  scratch.kubectl(sandbox.kubeconfigPath, args, options)
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** The exec upgrades the sandbox saw since `from`: method and Upgrade header, in order. */
function execUpgrades(from: number): string[] {
  return sandbox.requests
    .slice(from)
    .filter((record) => /\/pods\/[^/]+\/exec\?/.test(record.path))
    .map((record) => `${record.method} ${record.upgrade ?? '-'}`)
}

describe('kubectl exec (WebSocket v5)', () => {
  it('keeps stdout and stderr apart and passes the exit code through', async () => {
    const from = sandbox.requests.length
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'])
    expect(result.stdout).toBe('out\n')
    expect(result.stderr).toBe('err\ncommand terminated with exit code 3\n')
    expect(result.code).toBe(3)
    // One WebSocket upgrade and no SPDY fallback: the v5 session worked as it is.
    expect(execUpgrades(from)).toEqual(['GET websocket'])
  })

  it('runs in /work as akamas, with the pod name as hostname and the pod’s environment', async () => {
    const result = await kubectl([
      'exec',
      sandbox.currentPodName,
      '--',
      'sh',
      '-c',
      'pwd; id -un; hostname; echo "HOME=$HOME TERM=$(printenv TERM || echo unset)"',
    ])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`/work\nakamas\n${sandbox.currentPodName}\nHOME=/work TERM=unset\n`)
  })

  it('feeds stdin to cat with -i, and its EOF ends cat', async () => {
    const input = 'first line\nsecond line without newline'
    const result = await kubectl(
      ['exec', '-i', 'deploy/management-pod', '--', 'sh', '-c', 'cat; echo; echo "cat saw EOF"'],
      {
        input,
      },
    )
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${input}\ncat saw EOF\n`)
  })

  it('carries a 4 MiB binary through exec -i … cat byte-exact', async () => {
    const payload = randomBytes(4 * 1024 * 1024)
    const result = await kubectl(['exec', '-i', 'deploy/management-pod', '--', 'cat'], { input: payload })
    expect(result.code).toBe(0)
    expect(result.stdoutBuffer.length).toBe(payload.length)
    expect(sha256(result.stdoutBuffer)).toBe(sha256(payload))
  })

  it('reports a death by signal as 128 + the signal number', async () => {
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'sh', '-c', 'kill -TERM $$'])
    expect(result.code).toBe(143)
    expect(result.stderr).toBe('command terminated with exit code 143\n')
  })

  it('runs an interactive bash in a real terminal: prompt, echo, stty size, resize, exit status', async () => {
    const terminal = scratch.terminal(
      [KUBECTL, '--cache-dir', scratch.cacheDir(), 'exec', '-it', sandbox.currentPodName, '--', 'bash'],
      scratch.env(sandbox.kubeconfigPath, { TERM: 'xterm-256color' }),
      { cols: 97, rows: 31 },
    )
    await terminal.waitFor(/\$ $/m)
    terminal.type('echo "typed-$((6*7))"\r')
    await terminal.waitFor('typed-42')
    expect(terminal.output).toContain('echo "typed-$((6*7))"') // echoed by the pod's terminal
    terminal.type('stty size; echo "term=$TERM"\r')
    await terminal.waitFor('31 97')
    await terminal.waitFor('term=xterm')
    const mark = terminal.output.length
    terminal.resize(121, 41)
    // kubectl forwards SIGWINCH as a resize message; poll until the pod's terminal has it.
    let resized = false
    for (let attempt = 0; attempt < 50 && !resized; attempt++) {
      const before = terminal.output.length
      terminal.type('stty size\r')
      await terminal.waitFor(/\d+ \d+\r?\n.*\$ $/s, { from: before })
      resized = terminal.output.slice(before).includes('41 121')
    }
    expect(resized).toBe(true)
    expect(terminal.output.slice(mark)).toContain('41 121')
    terminal.type('exit 4\r')
    expect(await terminal.exit()).toEqual({ code: 4, signal: null })
    expect(terminal.output).toContain('command terminated with exit code 4')
  })

  it('refuses exec into a completed pod before any upgrade (kubectl checks the phase)', async () => {
    const name = await sandbox.addPod({ namespace: 'done', name: 'finished-0', phase: 'Succeeded' })
    try {
      const from = sandbox.requests.length
      const result = await kubectl(['exec', '-n', 'done', name, '--', 'true'])
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe(
        'error: cannot exec into a container in a completed pod; current phase is Succeeded',
      )
      expect(execUpgrades(from)).toEqual([])
    } finally {
      await sandbox.deletePod(name, 'done')
    }
  })
})

describe('kubectl exec error paths', () => {
  it('a bad container: the same 400 Status to the WebSocket GET and to the SPDY retry', async () => {
    const from = sandbox.requests.length
    const result = await kubectl(['exec', 'deploy/management-pod', '-c', 'nope', '--', 'true'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      `Error from server (BadRequest): container nope is not valid for pod ${sandbox.currentPodName}`,
    )
    expect(execUpgrades(from)).toEqual(['GET websocket', 'POST SPDY/3.1'])
  })

  it('RBAC: denying get on pods/exec only blocks the WebSocket GET; the SPDY POST (create) runs the command', async () => {
    sandbox.deny({ verb: 'get', resource: 'pods/exec' })
    const from = sandbox.requests.length
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'sh', '-c', 'echo via-fallback; exit 6'])
    expect(result.stdout).toBe('via-fallback\n')
    expect(result.stderr).toBe('command terminated with exit code 6\n')
    expect(result.code).toBe(6)
    expect(execUpgrades(from)).toEqual(['GET websocket', 'POST SPDY/3.1'])
  })

  it('RBAC: denying create on pods/exec does not matter to kubectl 1.32, whose WebSocket GET is a get', async () => {
    sandbox.deny({ verb: 'create', resource: 'pods/exec' })
    const from = sandbox.requests.length
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'echo', 'via-websocket'])
    expect(result).toMatchObject({ code: 0, stdout: 'via-websocket\n', stderr: '' })
    expect(execUpgrades(from)).toEqual(['GET websocket'])
  })

  it('RBAC: denying both, kubectl reports the SPDY retry’s 403 (create)', async () => {
    sandbox.deny({ verb: '*', resource: 'pods/exec' })
    const from = sandbox.requests.length
    const result = await kubectl(['exec', 'deploy/management-pod', '--', 'true'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      `Error from server (Forbidden): pods "${sandbox.currentPodName}" is forbidden: User "sandbox-admin" cannot create resource "pods/exec" in API group "" in the namespace "${sandbox.namespace}"`,
    )
    expect(execUpgrades(from)).toEqual(['GET websocket', 'POST SPDY/3.1'])
  })

  it('a container that is not running yet: the kubelet’s refusal, after the upgrade (v5) or as the SPDY answer', async () => {
    const name = await sandbox.addPod({ namespace: 'starting', name: 'starting-0', phase: 'Pending' })
    try {
      const from = sandbox.requests.length
      const overWebSocket = await kubectl(['exec', '-n', 'starting', name, '--', 'true'])
      expect(overWebSocket.code).toBe(1)
      expect(overWebSocket.stderr.trim()).toBe(
        'error: Internal error occurred: unable to upgrade connection: container not found ("management-pod")',
      )
      // The translator accepted the WebSocket, so there is no SPDY retry.
      expect(execUpgrades(from)).toEqual(['GET websocket'])
      const overSpdy = await kubectl(['exec', '-n', 'starting', name, '--', 'true'], {
        env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' },
      })
      expect(overSpdy.code).toBe(1)
      expect(overSpdy.stderr.trim()).toBe('error: unable to upgrade connection: container not found ("management-pod")')
    } finally {
      await sandbox.deletePod(name, 'starting')
    }
  })

  it('a plain request (no upgrade) to exec is checked, then refused with "Upgrade request required"', async () => {
    const result = await kubectl([
      'get',
      '--raw',
      `/api/v1/namespaces/${sandbox.namespace}/pods/${sandbox.currentPodName}/exec?command=true&stdout=true`,
    ])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('Error from server (BadRequest): Upgrade request required')
    const missing = await kubectl([
      'get',
      '--raw',
      `/api/v1/namespaces/${sandbox.namespace}/pods/nope/exec?command=true&stdout=true`,
    ])
    expect(missing.stderr.trim()).toBe('Error from server (NotFound): pods "nope" not found')
  })
})
