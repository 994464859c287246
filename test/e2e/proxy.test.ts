import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, cliPath, runCli } from '../helpers/cli.js'
import { type Running, run, sha256, startCli, strictHostKeyOptions } from '../helpers/openssh.js'
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

/** A fresh HOME whose known_hosts holds the pod's key, stored by akm-access itself. */
async function seededEnv(): Promise<{ env: NodeJS.ProcessEnv; sshOptions: string[] }> {
  const env = cliEnv(sandbox.kubeconfigPath)
  expect((await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })).code).toBe(0)
  const knownHosts = join(env.HOME!, '.config', 'akm-access', 'known_hosts')
  const alias = readFileSync(knownHosts, 'utf8').split(' ')[0]!
  const sshOptions = [
    '-F',
    'none',
    '-i',
    sandbox.userKey.path,
    ...strictHostKeyOptions(knownHosts, alias),
    // As a user would write it: ssh passes %h and %p, which proxy accepts and ignores.
    '-o',
    `ProxyCommand=${process.execPath} ${cliPath} proxy %h %p`,
  ]
  return { env, sshOptions }
}

describe('akm-access proxy', () => {
  it('carries ssh (exit status, stdout, stderr), scp, sftp and rsync with no local port', async () => {
    const { env, sshOptions } = await seededEnv()
    const ssh = await run('ssh', [...sshOptions, 'akamas@management', 'hostname; echo err >&2; exit 7'], { env })
    expect(ssh.code).toBe(7)
    expect(ssh.stdout.toString()).toBe(`${sandbox.currentPodName}\n`)
    expect(ssh.stderr).toBe('err\n')

    const dir = mkdtempSync(join(tmpdir(), 'akm-proxy-'))
    const payload = randomBytes(16 * 1024 * 1024)
    writeFileSync(join(dir, 'up.bin'), payload)
    const scp = await run('scp', [...sshOptions, join(dir, 'up.bin'), 'akamas@management:/work/proxy-up.bin'], {
      env,
      timeoutMs: 60_000,
    })
    expect(scp).toMatchObject({ code: 0, stderr: '' })
    expect(sha256(sandbox.readWorkFile('proxy-up.bin'))).toBe(sha256(payload))

    const down = await run('ssh', [...sshOptions, 'akamas@management', 'cat /work/proxy-up.bin'], {
      env,
      timeoutMs: 60_000,
    })
    expect(down.code).toBe(0)
    expect(sha256(down.stdout)).toBe(sha256(payload))

    const sftp = await run('sftp', [...sshOptions, '-b', '-', 'akamas@management'], {
      env,
      input: `put ${join(dir, 'up.bin')} /work/proxy-sftp.bin\nget /work/proxy-sftp.bin ${join(dir, 'sftp.bin')}\n`,
      timeoutMs: 60_000,
    })
    expect(sftp.code).toBe(0)
    expect(sha256(readFileSync(join(dir, 'sftp.bin')))).toBe(sha256(payload))

    mkdirSync(join(dir, 'tree', 'deep'), { recursive: true })
    writeFileSync(join(dir, 'tree', 'deep', 'x.txt'), 'x\n')
    const rsync = await run(
      'rsync',
      [
        '-a',
        '-e',
        ['ssh', ...sshOptions.map(quoteForRsync)].join(' '),
        `${dir}/tree/`,
        'akamas@management:/work/ptree/',
      ],
      { env },
    )
    expect(rsync).toMatchObject({ code: 0 })
    expect(sandbox.readWorkFile('ptree/deep/x.txt').toString()).toBe('x\n')
  })

  it('writes only protocol bytes on stdout, and exits 255 with one line on stderr when the pod goes away', async () => {
    const { env } = await seededEnv()
    const proxy = startCli(['proxy'], env, { stdin: true })
    running.push(proxy)
    // sshd speaks first: its version line is the first thing on stdout, with nothing before it.
    await proxy.waitFor(/SSH-2\.0-OpenSSH_[^\r\n]*\r\n/, { stream: 'stdout' })
    expect(proxy.stdout).toMatch(/^SSH-2\.0-OpenSSH_/)
    const pod = sandbox.currentPodName
    await sandbox.deletePod(pod)
    try {
      expect((await proxy.exited).code).toBe(255)
      expect(proxy.stderr).toMatch(/^akm-access proxy: [^\n]+\n$/)
      expect(proxy.stderr).toContain(pod)
    } finally {
      await sandbox.addPod()
    }
  })

  it('exits 0 as soon as ssh closes its end, and leaves no process behind', async () => {
    const { env } = await seededEnv()
    const proxy = startCli(['proxy'], env, { stdin: true })
    running.push(proxy)
    await proxy.waitFor(/SSH-2\.0-/, { stream: 'stdout' })
    proxy.child.stdin?.end()
    expect(await proxy.exited).toEqual({ code: 0, signal: null })
    expect(proxy.stderr).toBe('')
  })

  it('waits for the replacement when the pod is between two lives', async () => {
    const { env, sshOptions } = await seededEnv()
    await sandbox.deletePod(sandbox.currentPodName)
    const ssh = run('ssh', [...sshOptions, 'akamas@management', 'hostname'], { env })
    // Let the proxy find no pod first.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const replacement = await sandbox.addPod()
    const result = await ssh
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(result.stdout.toString()).toBe(`${replacement}\n`)
  })

  it('fails at once, on one line, when there is no management pod and --pod-timeout is 0', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const result = await runCli(['proxy', '-n', 'default', '--pod-timeout', '0'], { env })
    expect(result.code).toBe(9)
    expect(result.stdout).toBe('')
    expect(result.stderr).toMatch(/^akm-access proxy: no management pod in namespace default \(.+\)\n$/)
  })
})

/** rsync -e splits its command on spaces and honours single quotes. */
function quoteForRsync(arg: string): string {
  return /\s/.test(arg) ? `'${arg}'` : arg
}
