/**
 * `ssh`, `forward`, `proxy` and `cp` with `--docker` against the Docker sandbox: sshd reached without a published
 * port, both ways (the container's address, and a bridge exec'd through the Engine API), with the same host key and
 * credential handling as on Kubernetes, and the real OpenSSH clients (scp, ssh -o ProxyCommand) on top.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, cliInTerminal, cliPath, runCli, type Terminal } from '../helpers/cli.js'
import { expectCliError } from '../helpers/expect-cli.js'
import { type Running, run, sha256, startCli, strictHostKeyOptions } from '../helpers/openssh.js'
import { DockerSandbox } from '../sandbox/docker/index.js'

let sandbox: DockerSandbox
const running: Running[] = []
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await DockerSandbox.start({ customPassword: 'Docker-Pass-7' })
})
afterEach(() => {
  for (const process of running.splice(0)) process.kill()
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
})

const freshEnv = () => cliEnv(undefined, { TERM: 'xterm-256color', ...sandbox.dockerEnv() })
const knownHostsOf = (env: NodeJS.ProcessEnv) => join(env.HOME!, '.config', 'akm-access', 'known_hosts')
const alias = () => `akm/docker/unix${sandbox.socketPath}/akamas/management-container`
/** The bridge exec'd for a stream: `sh -c … akm-access ADDRESS PORT …`. */
const bridges = () =>
  sandbox.requests.filter(
    (r) => r.path.endsWith('/exec') && JSON.stringify((r.body as { Cmd?: unknown })?.Cmd ?? []).includes('/dev/tcp'),
  ).length

/** A HOME whose known_hosts trusts the container's key, as `ssh --accept-new-host-key` stored it. */
async function trustedEnv(): Promise<NodeJS.ProcessEnv> {
  const env = freshEnv()
  const first = await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
  expect(first.code, first.stderr).toBe(0)
  return env
}

describe('akm-access ssh --docker', () => {
  it('trusts the host key on first use only when told, then logs in with CUSTOM_PASSWORD', async () => {
    const env = freshEnv()
    const refused = await runCli(['ssh', '--docker', '--no-tunnel', '--', 'true'], { env })
    expectCliError(refused, { code: 14, message: 'host key verification failed', hint: '--accept-new-host-key' })

    const accepted = await runCli(
      ['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'hostname; echo err >&2; exit 6'],
      { env },
    )
    expect(accepted.code).toBe(6)
    expect(accepted.stdout).toBe(`${sandbox.shortId}\n`)
    expect(accepted.stderr).toContain(`Warning: Permanently added '${alias()}' (ED25519) to the list of known hosts.`)
    expect(accepted.stderr).toContain('err\n')
    expect(readFileSync(knownHostsOf(env), 'utf8')).toContain(`${alias()} ssh-ed25519 `)

    // Known now: silent. Through the engine (an exec'd bridge) as well as at the container's address.
    const before = bridges()
    const viaExec = await runCli(['ssh', '--docker', '--docker-stream', 'exec', '--no-tunnel', '--', 'echo ok'], {
      env,
    })
    expect(viaExec).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' })
    expect(bridges()).toBe(before + 1)
    const viaAddress = await runCli(['ssh', '--docker', '--docker-stream', 'address', '--no-tunnel', '--', 'echo ok'], {
      env,
    })
    expect(viaAddress).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' })
    expect(bridges()).toBe(before + 1)
  })

  it('opens a login shell in a terminal, with its tunnel line', async () => {
    const env = await trustedEnv()
    const terminal = cliInTerminal(['ssh', '--docker', '--port', '0'], env)
    terminals.push(terminal)
    await terminal.waitFor(/tunnel: 127\.0\.0\.1:\d+ -> management-container:22/)
    await terminal.waitFor(`akamas@${sandbox.shortId}:~$ `)
    terminal.type('echo "$((40+2)) $PWD"\r')
    await terminal.waitFor('42 /work')
    terminal.type('exit 3\r')
    expect((await terminal.exit()).code).toBe(3)
  })

  it('keeps trusting a re-created container with the same key, and refuses a changed key (exit 14)', async () => {
    const env = await trustedEnv()
    await sandbox.recreateContainer()
    const same = await runCli(['ssh', '--docker', '--no-tunnel', '--', 'hostname'], { env })
    expect(same).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n`, stderr: '' })

    await sandbox.recreateContainer({ newHostKey: true })
    const changed = await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    expect(changed.code).toBe(14)
    expect(changed.stderr).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED')
    expect(changed.stderr).toContain(`Error: the host key of management-container has changed`)
    expect(changed.stdout).toBe('')

    const forgotten = await runCli(['ssh', '--docker', '--forget-host-key'], { env })
    expect(forgotten.stderr).toContain(`forgot the host key of ${alias()}`)
    const again = await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'echo back'], { env })
    expect(again).toMatchObject({ code: 0, stdout: 'back\n' })
  })
})

describe('akm-access forward --docker and proxy --docker with the real OpenSSH', () => {
  for (const mode of ['exec', 'address'] as const) {
    it(`forward (${mode}): scp up and down through the local port, then Ctrl-C ends it with 0`, async () => {
      const env = await trustedEnv()
      const forward = startCli(['forward', '--docker', '--docker-stream', mode, '--port', '0'], env)
      running.push(forward)
      const [, port] = await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+) -> management-container:22 /, {
        stream: 'stdout',
      })
      expect(forward.stdout).toContain(mode === 'exec' ? 'through the Docker engine' : `through ${sandbox.ipAddress}`)
      await forward.waitFor(/Connect with: ssh -p \d+ -o HostKeyAlias=akm\/docker\//)
      const dir = mkdtempSync(join(tmpdir(), 'akm-docker-fwd-'))
      const payload = randomBytes(3 * 1024 * 1024 + 17)
      writeFileSync(join(dir, 'up.bin'), payload)
      const options = [
        '-F',
        'none',
        '-P',
        port!,
        '-i',
        sandbox.userKey.path,
        ...strictHostKeyOptions(knownHostsOf(env), alias()),
      ]
      const started = performance.now()
      const up = await run('scp', [...options, join(dir, 'up.bin'), 'akamas@127.0.0.1:/work/fwd.bin'], { env })
      const seconds = (performance.now() - started) / 1000
      expect(up).toMatchObject({ code: 0, stderr: '' })
      expect(sha256(sandbox.readWorkFile('fwd.bin'))).toBe(sha256(payload))
      const down = await run('scp', [...options, 'akamas@127.0.0.1:/work/fwd.bin', join(dir, 'down.bin')], { env })
      expect(down.code).toBe(0)
      expect(sha256(readFileSync(join(dir, 'down.bin')))).toBe(sha256(payload))
      console.info(`docker forward (${mode}): scp of 3 MiB up in ${(seconds * 1000).toFixed(0)} ms`)
      forward.kill('SIGINT')
      expect((await forward.exited).code).toBe(0)
    })
  }

  it('forward follows the container across a restart', async () => {
    const env = await trustedEnv()
    const forward = startCli(['forward', '--docker', '--port', '0', '--pod-timeout', '20s'], env)
    running.push(forward)
    const [, port] = await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+) /, { stream: 'stdout' })
    const options = [
      '-F',
      'none',
      '-p',
      port!,
      '-i',
      sandbox.userKey.path,
      ...strictHostKeyOptions(knownHostsOf(env), alias()),
    ]
    expect((await run('ssh', [...options, 'akamas@127.0.0.1', 'hostname'], { env })).stdout.toString()).toBe(
      `${sandbox.shortId}\n`,
    )
    await sandbox.restartContainer()
    const after = await run('ssh', [...options, 'akamas@127.0.0.1', 'echo after-restart'], { env })
    expect(after).toMatchObject({ code: 0 })
    expect(after.stdout.toString()).toBe('after-restart\n')
    // Re-created by compose: a new id and a new address, the same name; the same host key.
    const oldAddress = sandbox.ipAddress
    await sandbox.recreateContainer()
    const recreated = await run('ssh', [...options, 'akamas@127.0.0.1', 'hostname'], { env })
    expect(recreated.stdout.toString()).toBe(`${sandbox.shortId}\n`)
    expect(sandbox.ipAddress).not.toBe(oldAddress)
  })

  for (const mode of ['auto', 'exec'] as const) {
    it(`proxy (${mode}): ssh -o ProxyCommand carries the session, its status and its output`, async () => {
      const env = await trustedEnv()
      const options = [
        '-F',
        'none',
        '-i',
        sandbox.userKey.path,
        ...strictHostKeyOptions(knownHostsOf(env), alias()),
        '-o',
        `ProxyCommand=${process.execPath} ${cliPath} proxy --docker --docker-stream ${mode} %h %p`,
      ]
      const before = bridges()
      const ssh = await run('ssh', [...options, 'akamas@management', 'hostname; echo err >&2; exit 5'], { env })
      expect(ssh.code).toBe(5)
      expect(ssh.stdout.toString()).toBe(`${sandbox.shortId}\n`)
      expect(ssh.stderr).toBe('err\n')
      // auto uses the container's address (this machine is on its network: the sandbox's loopback network).
      expect(bridges()).toBe(mode === 'exec' ? before + 1 : before)
      const payload = randomBytes(1024 * 1024)
      const cat = await run('ssh', [...options, 'akamas@management', 'sha256sum'], { env, input: payload })
      expect(cat.stdout.toString()).toBe(`${sha256(payload)}  -\n`)
    })
  }

  it('proxy exits 10 with one line when the container is stopped (after --pod-timeout)', async () => {
    const env = await trustedEnv()
    await sandbox.stopContainer()
    try {
      const result = await runCli(['proxy', '--docker', '--pod-timeout', '0'], { env })
      expect(result.code).toBe(10)
      expect(result.stderr).toMatch(/^akm-access proxy: management container management-container is not running/)
      expect(result.stderr.trim().split('\n')).toHaveLength(1)
    } finally {
      await sandbox.startContainer()
    }
  })
})

describe('akm-access cp --docker', () => {
  for (const mode of ['auto', 'exec'] as const) {
    it(`copies a file both ways, verified (${mode})`, async () => {
      const env = await trustedEnv()
      const dir = mkdtempSync(join(tmpdir(), 'akm-docker-cp-'))
      const payload = randomBytes(2 * 1024 * 1024 + 3)
      writeFileSync(join(dir, 'study.bin'), payload)
      const up = await runCli(['cp', '--docker', '--docker-stream', mode, '--json', join(dir, 'study.bin'), ':cp/'], {
        env,
      })
      expect(up.code, up.stderr).toBe(0)
      expect(JSON.parse(up.stdout)).toMatchObject({
        direction: 'upload',
        files: 1,
        bytes: payload.length,
        checksummed: 1,
      })
      expect(sha256(sandbox.readWorkFile('cp/study.bin'))).toBe(sha256(payload))
      const down = await runCli(
        ['cp', '--docker', '--docker-stream', mode, ':/work/cp/study.bin', join(dir, 'back.bin')],
        {
          env,
        },
      )
      expect(down.code, down.stderr).toBe(0)
      expect(sha256(readFileSync(join(dir, 'back.bin')))).toBe(sha256(payload))
    })
  }
})
