/**
 * The sandbox against the kubectl versions beside 1.32 (called directly, not through the dispatcher): 1.31 and 1.33
 * list pods, exec over WebSocket and over SPDY, and port-forward to the pod's sshd.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { Scratch, tableRows, versionedKubectl } from './kubectl.js'

let sandbox: Sandbox
let scratch: Scratch

beforeAll(async () => {
  sandbox = await Sandbox.start()
  scratch = new Scratch()
})
afterEach(async () => {
  await scratch.killAll()
})
afterAll(async () => {
  await scratch?.cleanup()
  await sandbox?.stop()
})

describe.each([
  { minor: 31, version: 'v1.31' },
  { minor: 33, version: 'v1.33' },
])('kubectl $version', ({ minor, version }) => {
  const binary = versionedKubectl(minor)
  const kubectl = (args: string[], options: Parameters<Scratch['kubectl']>[2] = {}) =>
    scratch.kubectl(sandbox.kubeconfigPath, args, { binary, ...options })

  it('is the version it claims (and talks to the sandbox as such)', async () => {
    const result = await kubectl(['version', '--client', '-o', 'json'])
    expect(JSON.parse(result.stdout).clientVersion.minor).toBe(String(minor))
    await kubectl(['get', 'ns', 'default', '-o', 'name'])
    expect(sandbox.requests.at(-1)?.userAgent).toMatch(
      new RegExp(`^kubectl(\\.1\\.${minor})?/${version.replace('.', '\\.')}\\.`),
    )
  })

  it('lists the management pod with the Table columns', async () => {
    const result = await kubectl(['get', 'pods', '-l', 'app=management-pod'])
    expect(result.code).toBe(0)
    expect(tableRows(result.stdout)).toEqual([
      ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'],
      [sandbox.currentPodName, '1/1', 'Running', '0', expect.stringMatching(/^(\d+s|\d+m(\d+s)?)$/)],
    ])
  })

  it('execs over WebSocket and over SPDY: stdin, stdout, stderr, exit code', async () => {
    for (const env of [{}, { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' }]) {
      const from = sandbox.requests.length
      const result = await kubectl(
        ['exec', '-i', 'deploy/management-pod', '--', 'sh', '-c', 'cat; echo e >&2; exit 7'],
        {
          input: `via ${JSON.stringify(env)}\n`,
          env,
        },
      )
      expect(result.stdout).toBe(`via ${JSON.stringify(env)}\n`)
      expect(result.stderr).toBe('e\ncommand terminated with exit code 7\n')
      expect(result.code).toBe(7)
      const upgrades = sandbox.requests
        .slice(from)
        .filter((r) => r.path.includes('/exec?'))
        .map((r) => r.upgrade)
      expect(upgrades).toEqual([Object.keys(env).length === 0 ? 'websocket' : 'SPDY/3.1'])
    }
  })

  it('port-forwards to the pod’s sshd (tunnel and direct SPDY) for an OpenSSH login', async () => {
    for (const env of [{}, { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' }]) {
      const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 22, {
        binary,
        env,
      })
      const result = await scratch.sshWithKey(
        sandbox.kubeconfigPath,
        forward.localPort,
        { keyFile: sandbox.userKey.path, hostPublicKey: sandbox.hostKey.publicKey },
        'pwd; hostname; id -un',
      )
      expect(result.stdout, JSON.stringify(env)).toBe(`/work\n${sandbox.currentPodName}\nakamas\n`)
      forward.child.kill('SIGTERM')
      await forward.exited
    }
  })
})
