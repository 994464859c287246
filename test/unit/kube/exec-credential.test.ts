import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AccessError, ExitCode } from '../../../src/errors.js'
import {
  clearExecCredentialCache,
  type ExecPluginIo,
  getExecCredential,
  runExecPlugin,
} from '../../../src/kube/exec-credential.js'
import { resolveConnection } from '../../../src/kube/kubeconfig.js'
import type { ClusterConfig, ExecConfig } from '../../../src/kube/types.js'
import { forgetSecrets, redact } from '../../../src/redact.js'
import { connectionFor, removeTempDirs, tempDir, writeKubeconfig } from './fixtures.js'

/**
 * A credential plugin: records what it received (KUBERNETES_EXEC_INFO, args, env, stdin) to $RECORD, talks to the
 * user on stderr, and prints an ExecCredential chosen by $MODE.
 */
const PLUGIN = String.raw`
import fs from 'node:fs'
const env = process.env
let stdin = ''
try { stdin = fs.readFileSync(0, 'utf8') } catch (error) { stdin = 'ERR:' + error.code }
const runs = env.RECORD && fs.existsSync(env.RECORD) ? fs.readFileSync(env.RECORD, 'utf8').split('\n').filter(Boolean).length : 0
if (env.RECORD) fs.appendFileSync(env.RECORD, JSON.stringify({ info: JSON.parse(env.KUBERNETES_EXEC_INFO), args: process.argv.slice(2), foo: env.FOO, stdin }) + '\n')
process.stderr.write('To sign in, open https://login.example/device and enter ABCD-1234\n')
const apiVersion = env.API_VERSION || 'client.authentication.k8s.io/v1beta1'
const out = (status) => process.stdout.write(JSON.stringify({ apiVersion, kind: 'ExecCredential', status }))
switch (env.MODE) {
  case 'fail': process.stderr.write('error: SSO session expired\n'); process.exit(3)
  case 'signal': process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 10000); break
  case 'garbage': process.stdout.write('token=leaked-secret-token-123 is not json'); break
  case 'cert': out({ clientCertificateData: env.CERT, clientKeyData: env.KEY }); break
  case 'expired': out({ token: 'token-run-' + (runs + 1), expirationTimestamp: '2000-01-01T00:00:00Z' }); break
  case 'counter': out({ token: 'token-run-' + (runs + 1), expirationTimestamp: '2999-01-01T00:00:00Z' }); break
  default: out({ token: env.TOKEN || 'plugin-token-value' })
}
`

let dir: string
let pluginPath: string
let record: string
let stderrFile: string
let stderrFd: number
let stdinFile: string
let stdinFd: number

const cluster: ClusterConfig = connectionFor({ server: 'https://kube.example:6443' }).cluster

beforeEach(() => {
  forgetSecrets()
  clearExecCredentialCache()
  dir = tempDir('akm-exec-')
  pluginPath = path.join(dir, 'plugin.mjs')
  writeFileSync(pluginPath, PLUGIN)
  record = path.join(dir, 'record.jsonl')
  stderrFile = path.join(dir, 'stderr.txt')
  stderrFd = openSync(stderrFile, 'w')
  stdinFile = path.join(dir, 'stdin.txt')
  writeFileSync(stdinFile, 'typed by the user\n')
  stdinFd = openSync(stdinFile, 'r')
})

afterEach(() => {
  closeSync(stderrFd)
  closeSync(stdinFd)
})

function exec(over: Partial<ExecConfig> & { vars?: Record<string, string> } = {}): ExecConfig {
  const { vars, ...rest } = over
  return {
    command: process.execPath,
    args: [pluginPath, '--cluster', 'prod'],
    env: [
      { name: 'RECORD', value: record },
      { name: 'FOO', value: 'from-kubeconfig' },
      ...Object.entries(vars ?? {}).map(([name, value]) => ({ name, value })),
    ],
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    installHint: undefined,
    provideClusterInfo: false,
    interactiveMode: 'IfAvailable',
    ...rest,
  }
}

function io(stdinIsTTY: boolean): ExecPluginIo {
  return { stdin: stdinFd, stderr: stderrFd, stdinIsTTY }
}

function runs(): {
  info: { spec: Record<string, unknown>; apiVersion: string; kind: string }
  args: string[]
  foo: string
  stdin: string
}[] {
  if (!existsSync(record)) return []
  return readFileSync(record, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
}

async function rejection(promise: Promise<unknown>): Promise<AccessError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(AccessError)
  return error as AccessError
}

describe('running a credential plugin', () => {
  it('passes args, env (kubeconfig env over ours) and KUBERNETES_EXEC_INFO, and returns the token', async () => {
    const credential = await runExecPlugin(exec(), cluster, {
      env: { FOO: 'from-process', PATH: process.env.PATH },
      io: io(false),
    })
    expect(credential).toEqual({
      token: 'plugin-token-value',
      clientCertificateData: undefined,
      clientKeyData: undefined,
      expiresAt: undefined,
    })
    const [run] = runs()
    expect(run?.args).toEqual(['--cluster', 'prod'])
    expect(run?.foo).toBe('from-kubeconfig')
    expect(run?.info).toEqual({
      kind: 'ExecCredential',
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      spec: { interactive: false },
    })
    // Not interactive: the plugin does not get our stdin.
    expect(run?.stdin).toBe('')
    expect(redact('Bearer plugin-token-value')).toBe('Bearer [redacted]')
  })

  it('is interactive when stdin is a terminal: spec.interactive and our stdin', async () => {
    await runExecPlugin(exec(), cluster, { env: {}, io: io(true) })
    const [run] = runs()
    expect(run?.info.spec).toEqual({ interactive: true })
    expect(run?.stdin).toBe('typed by the user\n')
  })

  it('honours interactiveMode Never and Always', async () => {
    await runExecPlugin(exec({ interactiveMode: 'Never' }), cluster, { env: {}, io: io(true) })
    expect(runs()[0]?.info.spec).toEqual({ interactive: false })
    expect(runs()[0]?.stdin).toBe('')
    const error = await rejection(
      runExecPlugin(exec({ interactiveMode: 'Always' }), cluster, { env: {}, io: io(false) }),
    )
    expect(error.message).toBe(
      'the credential plugin "node" needs an interactive terminal (interactiveMode: Always), but standard input is not a terminal',
    )
    expect(runs()).toHaveLength(1)
  })

  it('hands the cluster to the plugin with provideClusterInfo', async () => {
    const withCa: ClusterConfig = {
      ...cluster,
      certificateAuthorityData: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      tlsServerName: 'api.internal',
      proxyUrl: 'http://proxy:3128',
      execExtension: { audience: 'kube-prod' },
    }
    await runExecPlugin(
      exec({
        provideClusterInfo: true,
        apiVersion: 'client.authentication.k8s.io/v1',
        vars: { API_VERSION: 'client.authentication.k8s.io/v1' },
      }),
      withCa,
      {
        env: {},
        io: io(false),
      },
    )
    expect(runs()[0]?.info).toEqual({
      kind: 'ExecCredential',
      apiVersion: 'client.authentication.k8s.io/v1',
      spec: {
        interactive: false,
        cluster: {
          server: 'https://kube.example:6443',
          'tls-server-name': 'api.internal',
          'certificate-authority-data': Buffer.from(withCa.certificateAuthorityData!).toString('base64'),
          'proxy-url': 'http://proxy:3128',
          config: { audience: 'kube-prod' },
        },
      },
    })
  })

  it("lets the plugin's stderr through to ours and keeps stdout for the credential", async () => {
    await runExecPlugin(exec(), cluster, { env: {}, io: io(false) })
    expect(readFileSync(stderrFile, 'utf8')).toBe('To sign in, open https://login.example/device and enter ABCD-1234\n')
  })

  it('returns a client certificate and key', async () => {
    const cert = '-----BEGIN CERTIFICATE-----\nCERTDATA\n-----END CERTIFICATE-----\n'
    const key = '-----BEGIN PRIVATE KEY-----\nKEYDATA-KEYDATA-KEYDATA\n-----END PRIVATE KEY-----\n'
    const credential = await runExecPlugin(exec({ vars: { MODE: 'cert', CERT: cert, KEY: key } }), cluster, {
      env: {},
      io: io(false),
    })
    expect(credential.clientCertificateData).toBe(cert)
    expect(credential.clientKeyData).toBe(key)
    expect(credential.token).toBeUndefined()
    expect(redact('KEYDATA-KEYDATA-KEYDATA')).toBe('[redacted]')
  })

  it('reports a failing plugin with its exit code, and its own message reaches the user', async () => {
    const error = await rejection(runExecPlugin(exec({ vars: { MODE: 'fail' } }), cluster, { env: {}, io: io(false) }))
    expect(error.message).toBe('the credential plugin "node" failed with exit code 3')
    expect(error.exitCode).toBe(ExitCode.unauthorized)
    expect(error.hint).toContain('aws sso login')
    expect(readFileSync(stderrFile, 'utf8')).toContain('error: SSO session expired')
  })

  it('reports a plugin killed by a signal', async () => {
    const error = await rejection(
      runExecPlugin(exec({ vars: { MODE: 'signal' } }), cluster, { env: {}, io: io(false) }),
    )
    expect(error.message).toBe('the credential plugin "node" was killed by SIGTERM')
  })

  it('shows the installHint when the command is missing', async () => {
    const error = await rejection(
      runExecPlugin(
        exec({
          command: 'akm-no-such-credential-plugin',
          installHint: 'Install it with:\n  brew install akm-plugin\n',
        }),
        cluster,
        { env: { PATH: process.env.PATH }, io: io(false) },
      ),
    )
    expect(error.message).toBe(
      'the kubeconfig\'s credential plugin "akm-no-such-credential-plugin" was not found on the PATH',
    )
    expect(error.hint).toBe('Install it with: brew install akm-plugin')
    expect(error.exitCode).toBe(ExitCode.config)
  })

  it('never quotes invalid output (it may hold a token)', async () => {
    const error = await rejection(
      runExecPlugin(exec({ vars: { MODE: 'garbage' } }), cluster, { env: {}, io: io(false) }),
    )
    expect(error.message).toBe(
      'the credential plugin "node" returned an invalid ExecCredential: its output is not JSON',
    )
    expect(`${error.message} ${error.hint}`).not.toContain('leaked-secret')
  })

  it('rejects a credential in another apiVersion than the kubeconfig asks for', async () => {
    const error = await rejection(
      runExecPlugin(exec({ vars: { API_VERSION: 'client.authentication.k8s.io/v1' } }), cluster, {
        env: {},
        io: io(false),
      }),
    )
    expect(error.message).toBe(
      'the credential plugin "node" returned an invalid ExecCredential: it uses apiVersion client.authentication.k8s.io/v1, but the kubeconfig asks for client.authentication.k8s.io/v1beta1',
    )
  })

  it('runs a relative command with a slash from the kubeconfig directory', async () => {
    const kubeDir = path.join(dir, 'kube')
    mkdirSync(path.join(kubeDir, 'bin'), { recursive: true })
    const script = path.join(kubeDir, 'bin', 'get-token.sh')
    writeFileSync(
      script,
      `#!/bin/sh\necho "ran in $(pwd)" >&2\nprintf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"sh-plugin-token"}}'\n`,
    )
    chmodSync(script, 0o755)
    const file = writeKubeconfig(path.join(kubeDir, 'config'), {
      'current-context': 'c',
      clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
      users: [
        {
          name: 'u',
          user: { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: './bin/get-token.sh' } },
        },
      ],
      contexts: [{ name: 'c', context: { cluster: 'x', user: 'u' } }],
    })
    // The working directory is elsewhere: only resolution against the kubeconfig finds the script.
    const connection = await resolveConnection(
      { kubeconfig: file },
      { env: {}, homeDir: undefined, cwd: '/', serviceAccountDir: '/nonexistent' },
    )
    const credential = await runExecPlugin(connection.user.exec!, connection.cluster, { env: {}, io: io(false) })
    expect(credential.token).toBe('sh-plugin-token')
  })
})

describe('caching credentials for the process', () => {
  it('runs the plugin once for sequential and concurrent callers', async () => {
    const config = exec({ vars: { MODE: 'counter' } })
    const context = { env: {}, io: io(false) }
    const [a, b] = await Promise.all([
      getExecCredential(config, cluster, context),
      getExecCredential(config, cluster, context),
    ])
    const c = await getExecCredential(config, cluster, context)
    expect([a.token, b.token, c.token]).toEqual(['token-run-1', 'token-run-1', 'token-run-1'])
    expect(runs()).toHaveLength(1)
    expect(a.expiresAt).toBe(Date.parse('2999-01-01T00:00:00Z'))
  })

  it('runs it again when the credential has expired, or when asked to refresh', async () => {
    const expiring = exec({ vars: { MODE: 'expired' } })
    const context = { env: {}, io: io(false) }
    expect((await getExecCredential(expiring, cluster, context)).token).toBe('token-run-1')
    expect((await getExecCredential(expiring, cluster, context)).token).toBe('token-run-2')
    const lasting = exec({ vars: { MODE: 'counter' } })
    expect((await getExecCredential(lasting, cluster, context)).token).toBe('token-run-3')
    expect((await getExecCredential(lasting, cluster, context, { refresh: true })).token).toBe('token-run-4')
    expect((await getExecCredential(lasting, cluster, context)).token).toBe('token-run-4')
  })

  it('does not cache failures', async () => {
    const failing = exec({ vars: { MODE: 'fail' } })
    await rejection(getExecCredential(failing, cluster, { env: {}, io: io(false) }))
    await rejection(getExecCredential(failing, cluster, { env: {}, io: io(false) }))
    expect(runs()).toHaveLength(2)
  })
})

afterAll(() => {
  removeTempDirs()
})
