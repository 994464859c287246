/**
 * Fidelity of port-forward, proven end to end with the real kubectl and OpenSSH: `kubectl port-forward pod/… :22`,
 * then `ssh` through the local port into the pod's sshd, with key and with password (SSH_ASKPASS), over the
 * SPDY-over-WebSocket tunnel (kubectl 1.32's default) and over direct SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false).
 * StrictHostKeyChecking against a known_hosts holding only the sandbox's host key proves whose sshd answered.
 */
import { once } from 'node:events'
import { connect } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { Scratch, sshOptions } from './kubectl.js'

let sandbox: Sandbox
let scratch: Scratch

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

/** The port-forward upgrades the sandbox saw since `from`. */
function portForwardUpgrades(from: number): string[] {
  return sandbox.requests
    .slice(from)
    .filter((record) => /\/pods\/[^/]+\/portforward$/.test(record.path))
    .map((record) => `${record.method} ${record.upgrade ?? '-'}`)
}

const REMOTE_COMMAND = 'pwd; hostname; id -un'

const modes = [
  { name: 'the SPDY-over-WebSocket tunnel', env: {}, upgrade: 'GET websocket' },
  { name: 'direct SPDY', env: { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' }, upgrade: 'POST SPDY/3.1' },
]

describe.each(modes)('kubectl port-forward over $name, then OpenSSH', ({ env, upgrade }) => {
  it('logs in with the user key (BatchMode, strict host key checking) and runs a command in /work', async () => {
    const from = sandbox.requests.length
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 22, { env })
    const result = await scratch.sshWithKey(
      sandbox.kubeconfigPath,
      forward.localPort,
      { keyFile: sandbox.userKey.path, hostPublicKey: sandbox.hostKey.publicKey },
      REMOTE_COMMAND,
      ['-o', 'IdentitiesOnly=yes'],
    )
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`/work\n${sandbox.currentPodName}\nakamas\n`)
    expect(portForwardUpgrades(from)).toEqual([upgrade])
  })

  it('logs in with the password through SSH_ASKPASS', async () => {
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 22, { env })
    const knownHosts = scratch.knownHosts(forward.localPort, sandbox.hostKey.publicKey)
    const result = await scratch.run(
      'setsid',
      [
        '-w', // no controlling terminal: ssh must ask SSH_ASKPASS, and nothing else
        'ssh',
        ...sshOptions(forward.localPort, knownHosts),
        '-o',
        'PubkeyAuthentication=no',
        '-o',
        'PreferredAuthentications=password',
        '-o',
        'NumberOfPasswordPrompts=1',
        'akamas@127.0.0.1',
        REMOTE_COMMAND,
      ],
      {
        env: scratch.env(sandbox.kubeconfigPath, {
          SSH_ASKPASS: scratch.askpass(sandbox.password),
          SSH_ASKPASS_REQUIRE: 'force',
        }),
      },
    )
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`/work\n${sandbox.currentPodName}\nakamas\n`)
  })

  it('refuses a wrong password (the pod’s sshd really checks it)', async () => {
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 22, { env })
    const knownHosts = scratch.knownHosts(forward.localPort, sandbox.hostKey.publicKey)
    const result = await scratch.run(
      'setsid',
      [
        '-w',
        'ssh',
        ...sshOptions(forward.localPort, knownHosts),
        '-o',
        'PubkeyAuthentication=no',
        '-o',
        'PreferredAuthentications=password',
        '-o',
        'NumberOfPasswordPrompts=1',
        'akamas@127.0.0.1',
        'true',
      ],
      {
        env: scratch.env(sandbox.kubeconfigPath, {
          SSH_ASKPASS: scratch.askpass('not-the-password'),
          SSH_ASKPASS_REQUIRE: 'force',
          LOG_LEVEL: 'ERROR',
        }),
      },
    )
    expect(result.code).toBe(255)
    expect(result.stderr).toContain('Permission denied')
  })

  it('refuses a host key other than the sandbox’s (the known_hosts check is real)', async () => {
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 22, { env })
    const stranger = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA stranger'
    const result = await scratch.sshWithKey(
      sandbox.kubeconfigPath,
      forward.localPort,
      { keyFile: sandbox.userKey.path, hostPublicKey: stranger },
      'true',
    )
    expect(result.code).toBe(255)
    expect(result.stderr).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED')
  })
})

describe('kubectl port-forward, other targets and errors', () => {
  it('resolves svc/management-pod and deploy/management-pod to the pod', async () => {
    for (const resource of ['svc/management-pod', 'deploy/management-pod']) {
      const forward = await scratch.portForward(sandbox.kubeconfigPath, resource, 22)
      const result = await scratch.sshWithKey(
        sandbox.kubeconfigPath,
        forward.localPort,
        { keyFile: sandbox.userKey.path, hostPublicKey: sandbox.hostKey.publicKey },
        'hostname',
      )
      expect(result.stdout, resource).toBe(`${sandbox.currentPodName}\n`)
      forward.child.kill('SIGTERM')
      await forward.exited
    }
  })

  it('refuses a pod that is not running (kubectl checks the phase)', async () => {
    const name = await sandbox.addPod({ namespace: 'waiting', name: 'pending-0', phase: 'Pending' })
    try {
      const result = await scratch.kubectl(sandbox.kubeconfigPath, [
        'port-forward',
        '-n',
        'waiting',
        `pod/${name}`,
        ':22',
      ])
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe(
        'error: unable to forward port because pod is not running. Current status=Pending',
      )
    } finally {
      await sandbox.deletePod(name, 'waiting')
    }
  })

  it('a pod port with nothing listening: kubectl logs the kubelet’s error and gives up', async () => {
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 2222)
    const socket = connect(forward.localPort, '127.0.0.1')
    socket.on('error', () => {})
    await once(socket, 'close')
    expect(await forward.exited).toBe(1)
    expect(forward.output()).toContain(`error forwarding port 2222 to pod ${sandbox.currentPodName}, uid `)
    expect(forward.output()).toContain('connect ECONNREFUSED')
    expect(forward.output()).toContain('error: lost connection to pod')
  })

  it('leaves no stream open on the server once kubectl port-forward is gone', async () => {
    const pod = sandbox.currentPodName
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${pod}`, 22)
    await scratch.sshWithKey(
      sandbox.kubeconfigPath,
      forward.localPort,
      { keyFile: sandbox.userKey.path, hostPublicKey: sandbox.hostKey.publicKey },
      'true',
    )
    expect(sandbox.streamCount(pod)).toBeGreaterThan(0)
    forward.child.kill('SIGTERM')
    await forward.exited
    await vi.waitFor(() => expect(sandbox.streamCount(pod)).toBe(0), { timeout: 5000 })
  })
})

describe('kubectl port-forward and RBAC', () => {
  afterEach(() => sandbox.allowAll())

  it('denying get on pods/portforward only blocks the tunnel (GET); direct SPDY (POST, create) still forwards', async () => {
    sandbox.deny({ verb: 'get', resource: 'pods/portforward' })
    const from = sandbox.requests.length
    const forward = await scratch.portForward(sandbox.kubeconfigPath, `pod/${sandbox.currentPodName}`, 22)
    const result = await scratch.sshWithKey(
      sandbox.kubeconfigPath,
      forward.localPort,
      { keyFile: sandbox.userKey.path, hostPublicKey: sandbox.hostKey.publicKey },
      'hostname',
    )
    expect(result.stdout).toBe(`${sandbox.currentPodName}\n`)
    expect(portForwardUpgrades(from)).toEqual(['GET websocket', 'POST SPDY/3.1'])
  })

  it('denying both: kubectl reports the SPDY attempt’s 403 and exits', async () => {
    sandbox.deny({ verb: '*', resource: 'pods/portforward' })
    const result = await scratch.kubectl(sandbox.kubeconfigPath, [
      'port-forward',
      `pod/${sandbox.currentPodName}`,
      ':22',
    ])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      `error: error upgrading connection: pods "${sandbox.currentPodName}" is forbidden: User "sandbox-admin" cannot create resource "pods/portforward" in API group "" in the namespace "${sandbox.namespace}"`,
    )
  })
})
