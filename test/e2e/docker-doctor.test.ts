/**
 * Which engine and which backend: Docker contexts resolved as the docker CLI does (DOCKER_HOST, DOCKER_CONTEXT,
 * currentContext, --docker-context, TLS-less TCP), detection of a docker-compose installation when nothing configures
 * Kubernetes (and never when something does), and `doctor --docker`, healthy and broken.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, runCli } from '../helpers/cli.js'
import { expectCliError } from '../helpers/expect-cli.js'
import { DockerSandbox } from '../sandbox/docker/index.js'

let sandbox: DockerSandbox

beforeAll(async () => {
  sandbox = await DockerSandbox.start({ customPassword: 'Doctor-Pass-1' })
})
afterAll(async () => {
  await sandbox?.stop()
})

/** The docker CLI's configuration of the sandbox, without DOCKER_HOST (which would override any context). */
const contextEnv = (extra: NodeJS.ProcessEnv = {}) =>
  cliEnv(undefined, { DOCKER_CONFIG: sandbox.dockerConfigDir, ...extra })

describe('the Docker engine, as the docker CLI finds it', () => {
  it('DOCKER_HOST: the unix socket, and plain TCP', async () => {
    const unix = await runCli(['shell', '--docker', '--', 'hostname'], { env: cliEnv(undefined, sandbox.dockerEnv()) })
    expect(unix).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    const before = sandbox.requests.length
    const tcp = await runCli(['shell', '--docker', '--', 'hostname'], {
      env: cliEnv(undefined, { ...sandbox.dockerEnv(), DOCKER_HOST: sandbox.tcpHost }),
    })
    expect(tcp).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    const used = sandbox.requests.slice(before)
    expect(used.length).toBeGreaterThan(2)
    expect(used.every((request) => request.transport === 'tcp')).toBe(true)
    // Versioned paths, negotiated from /version as the CLI does from _ping.
    expect(used[0]).toMatchObject({ method: 'GET', url: '/version' })
    expect(used.slice(1).every((request) => request.apiVersion === '1.47')).toBe(true)
  })

  it('the current context of config.json, DOCKER_CONTEXT, and --docker-context', async () => {
    sandbox.createContext('akamas-tcp', { host: sandbox.tcpHost!, setCurrent: false })
    sandbox.createContext('akamas-unix', { setCurrent: true })
    const countTcp = () => sandbox.requests.filter((request) => request.transport === 'tcp').length

    let before = countTcp()
    const current = await runCli(['shell', '--docker', '--', 'hostname'], { env: contextEnv() })
    expect(current).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    expect(countTcp()).toBe(before)

    before = countTcp()
    const fromEnv = await runCli(['shell', '--docker', '--', 'hostname'], {
      env: contextEnv({ DOCKER_CONTEXT: 'akamas-tcp' }),
    })
    expect(fromEnv).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    expect(countTcp()).toBeGreaterThan(before)

    before = countTcp()
    // --docker-context implies --docker, and wins over DOCKER_CONTEXT.
    const fromFlag = await runCli(['shell', '--docker-context', 'akamas-tcp', '--', 'hostname'], {
      env: contextEnv({ DOCKER_CONTEXT: 'akamas-unix' }),
    })
    expect(fromFlag).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    expect(countTcp()).toBeGreaterThan(before)

    const unknown = await runCli(['shell', '--docker-context', 'nope', '--', 'true'], { env: contextEnv() })
    expectCliError(unknown, { code: 3, message: 'Docker context "nope" not found', hint: 'docker context ls' })
  })

  it('DOCKER_HOST=ssh://: through `ssh … docker system dial-stdio`, as the docker CLI (OpenSSH stood in for)', async () => {
    // A stand-in for OpenSSH on PATH: records its arguments, then joins stdin/stdout to the engine's socket, as
    // `docker system dial-stdio` does on the far host.
    const bin = mkdtempSync(join(tmpdir(), 'akm-fake-ssh-'))
    const log = join(bin, 'calls.log')
    writeFileSync(
      join(bin, 'ssh'),
      `#!${process.execPath}
const net = require('node:net')
require('node:fs').appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + '\\n')
const socket = net.connect(${JSON.stringify(sandbox.socketPath)})
process.stdin.pipe(socket)
socket.pipe(process.stdout)
socket.on('close', () => process.exit(0))
socket.on('error', () => process.exit(255))
`,
      { mode: 0o755 },
    )
    const env = cliEnv(undefined, { PATH: `${bin}:${process.env.PATH}`, DOCKER_HOST: 'ssh://ops@engine.example:2200' })
    const result = await runCli(['shell', '--docker', '--', 'sh', '-c', 'hostname; exit 4'], { env })
    expect(result).toMatchObject({ code: 4, stdout: `${sandbox.shortId}\n` })
    const calls = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as string[])
    // One kept-alive connection for the requests, one for the exec's hijacked stream.
    expect(calls).toHaveLength(2)
    expect(calls[0]).toEqual([
      '-o',
      'ConnectTimeout=30',
      '-T',
      '-l',
      'ops',
      '-p',
      '2200',
      '--',
      'engine.example',
      'docker',
      'system',
      'dial-stdio',
    ])
    // sshd is bridged through the engine: the container's address means nothing on this side of ssh.
    const ssh = await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'echo via-ssh-engine'], {
      env,
    })
    expect(ssh).toMatchObject({ code: 0, stdout: 'via-ssh-engine\n' })
    expect(ssh.stderr).toContain("'akm/docker/ssh-ops_engine.example-2200/akamas/management-container'")
  })

  it('no engine where DOCKER_HOST points: exit 4, with what to check', async () => {
    const env = cliEnv(undefined, { DOCKER_HOST: `unix://${join(sandbox.dir, 'no-such.sock')}` })
    const result = await runCli(['shell', '--docker', '--', 'true'], { env })
    expectCliError(result, { code: 4, message: 'cannot reach the Docker engine at unix://', hint: 'is Docker running' })
  })
})

describe('detection', () => {
  it('without any Kubernetes configuration, uses the management container and says so once', async () => {
    const env = cliEnv(undefined, sandbox.dockerEnv())
    const result = await runCli(['shell', '--', 'hostname'], { env })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${sandbox.shortId}\n`)
    expect(result.stderr).toBe(
      `no Kubernetes configuration; using the docker-compose management container management-container on ${sandbox.dockerHost}\n`,
    )
    const password = await runCli(['password'], { env })
    expect(password.stdout).toBe('Doctor-Pass-1\n')
  })

  it('never when a kubeconfig exists: its error is what the user sees', async () => {
    const env = cliEnv(undefined, sandbox.dockerEnv())
    const kubeconfig = join(env.HOME!, 'kubeconfig')
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n')
    const withKubeconfig = await runCli(['shell', '--', 'hostname'], { env: { ...env, KUBECONFIG: kubeconfig } })
    expect(withKubeconfig.code).toBe(3)
    expect(withKubeconfig.stderr).not.toContain('docker')
    // A KUBECONFIG that names missing files is a mistake to report, not a reason to look elsewhere.
    const missing = await runCli(['shell', '--', 'hostname'], { env: { ...env, KUBECONFIG: join(env.HOME!, 'nope') } })
    expectCliError(missing, { code: 3, message: 'no kubeconfig found' })
  })

  it('without Kubernetes and without a Docker engine: the kubeconfig error, unchanged', async () => {
    const env = cliEnv(undefined, { DOCKER_HOST: `unix://${join(sandbox.dir, 'no-such.sock')}` })
    const result = await runCli(['shell', '--', 'true'], { env })
    expectCliError(result, { code: 3, message: 'no kubeconfig found', hint: '--kubeconfig' })
  })
})

interface Report {
  ok: boolean
  exitCode: number
  firstFailure: string | null
  checks: { id: string; status: string; detail: string; hint?: string; exitCode?: number; skippedBecause?: string }[]
}

describe('akm-access doctor --docker', () => {
  it('passes every link of a healthy installation (the host key warns until trusted)', async () => {
    const env = cliEnv(undefined, sandbox.dockerEnv())
    const first = await runCli(['doctor', '--docker', '--json'], { env })
    const report = JSON.parse(first.stdout) as Report
    expect(report.checks.map((check) => check.id)).toEqual([
      'docker-engine',
      'container',
      'credentials',
      'sshd',
      'host-key',
      'ssh-login',
      'terminal',
      'known-hosts',
      'local-port',
      'node',
    ])
    const byId = Object.fromEntries(report.checks.map((check) => [check.id, check]))
    expect(byId['docker-engine']).toMatchObject({ status: 'pass' })
    expect(byId['docker-engine']?.detail).toMatch(/^Docker Engine 27\.5\.1 .* at unix:\/\//)
    expect(byId.container).toMatchObject({ status: 'pass' })
    expect(byId.container?.detail).toContain('compose project akamas, service management-container')
    expect(byId.credentials?.detail).toContain('a password from CUSTOM_PASSWORD of container management-container')
    expect(byId.credentials?.detail).toContain('password login is enabled (ALLOW_PASSWORD is true)')
    expect(byId.sshd).toMatchObject({ status: 'pass' })
    expect(byId.sshd?.detail).toMatch(/^SSH-2\.0-OpenSSH/)
    expect(byId.sshd?.detail).toContain(`at the container's address ${sandbox.ipAddress}:22`)
    expect(byId['host-key']).toMatchObject({ status: 'warn' })
    expect(byId['ssh-login']).toMatchObject({ status: 'warn' })
    expect(first.code).toBe(0)
    expect(first.stdout).not.toContain('Doctor-Pass-1')

    // Trusted: the login is tried, with the password; through the engine as well.
    await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    const second = await runCli(['doctor', '--docker', '--docker-stream', 'exec'], { env })
    expect(second.code).toBe(0)
    expect(second.stdout).toMatch(/✓ Host key\s+ED25519 key SHA256:/)
    expect(second.stdout).toContain("through a bridge exec'd in the container")
    expect(second.stdout).toMatch(/✓ SSH login\s+sshd accepted akamas with the password from CUSTOM_PASSWORD/)
    expect(second.stdout).toContain('All 10 checks passed.')
  })

  it('names the broken link when the container is stopped (exit 10), skipping what depends on it', async () => {
    const env = cliEnv(undefined, sandbox.dockerEnv())
    await sandbox.stopContainer()
    try {
      const result = await runCli(['doctor', '--docker', '--json'], { env })
      const report = JSON.parse(result.stdout) as Report
      expect(result.code).toBe(10)
      expect(report).toMatchObject({ ok: false, exitCode: 10, firstFailure: 'container' })
      const byId = Object.fromEntries(report.checks.map((check) => [check.id, check]))
      expect(byId.container).toMatchObject({ status: 'fail', exitCode: 10 })
      expect(byId.container?.detail).toMatch(/is not running: exited \(0\)/)
      expect(byId.container?.hint).toContain('docker compose -p akamas up -d management-container')
      for (const id of ['credentials', 'sshd', 'host-key', 'ssh-login']) {
        expect(byId[id]).toMatchObject({ status: 'skip', skippedBecause: 'container' })
      }
      expect(byId.node).toMatchObject({ status: 'pass' })
    } finally {
      await sandbox.startContainer()
    }
  })

  it('fails on the engine when there is none (exit 4)', async () => {
    const env = cliEnv(undefined, { DOCKER_HOST: `unix://${join(sandbox.dir, 'no-such.sock')}` })
    const result = await runCli(['doctor', '--docker'], { env })
    expect(result.code).toBe(4)
    expect(result.stdout).toMatch(/✗ Docker engine\s+cannot reach the Docker engine at unix:\/\//)
    expect(result.stdout).toContain('The first broken link: Docker engine (exit 4).')
  })

  it('runs the docker checks when it detects the installation (no Kubernetes configuration)', async () => {
    const env = cliEnv(undefined, sandbox.dockerEnv())
    const result = await runCli(['doctor', '--json'], { env })
    const report = JSON.parse(result.stdout) as Report
    expect(report.checks[0]?.id).toBe('docker-engine')
    expect(result.stderr).toContain('no Kubernetes configuration; using the docker-compose management container')
  })
})
