import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair, type KeyPair, knownHostsLine } from './keys.js'
import { createPodRuntime, type NamespacedPodRuntime } from './pod-runtime.js'
import { ensurePrivsepDir, findFreePort, sshdPaths, startSshd } from './sshd.js'

const execFileAsync = promisify(execFile)
const PASSWORD = 'S3cret pass, with spaces!'

let base: string
let clientHome: string
let knownHosts: string
let hostKey: KeyPair
let userKey: KeyPair
let rsaKey: KeyPair
let strangerKey: KeyPair
let askpass: string
let wrongAskpass: string
const pods: NamespacedPodRuntime[] = []

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'sshd-test-'))
  clientHome = join(base, 'client-home')
  await mkdir(clientHome, { mode: 0o700 })
  knownHosts = join(clientHome, 'known_hosts')
  hostKey = generateKeyPair(base, 'host_ed25519')
  userKey = generateKeyPair(clientHome, 'id_ed25519')
  rsaKey = generateKeyPair(clientHome, 'id_rsa', 'rsa-pem')
  strangerKey = generateKeyPair(clientHome, 'id_stranger')
  askpass = await writeAskpass('askpass', PASSWORD)
  wrongAskpass = await writeAskpass('askpass-wrong', 'not the password')
})

afterAll(async () => {
  await Promise.all(pods.map((pod) => pod.destroy()))
  await rm(base, { recursive: true, force: true })
})

/** An SSH_ASKPASS program that prints the password, which sits in a 0600 file of the test's temp folder. */
async function writeAskpass(name: string, password: string): Promise<string> {
  const passwordFile = join(clientHome, `${name}.password`)
  await writeFile(passwordFile, password, { mode: 0o600 })
  const script = join(clientHome, name)
  await writeFile(script, `#!/bin/sh\nexec cat '${passwordFile}'\n`, { mode: 0o700 })
  return script
}

async function startPod(name: string, sshd: { password?: string; passwordAuthentication: boolean }) {
  const dir = await mkdtemp(join(base, `${name}-`))
  const workDir = join(dir, 'work')
  const pod = await createPodRuntime({
    name,
    workDir,
    stateDir: join(dir, 'state'),
    hostKeyPath: hostKey.path,
    sshd: { ...sshd, authorizedKeys: [userKey.publicKey, rsaKey.publicKey] },
  })
  pods.push(pod)
  await trustHostKeyAt(pod.sshPort!)
  return { pod, workDir }
}

/** Pre-seeds the client's known_hosts, so that StrictHostKeyChecking=yes accepts the pod's sshd. */
async function trustHostKeyAt(port: number): Promise<void> {
  await appendFile(knownHosts, `${knownHostsLine('127.0.0.1', port, hostKey.publicKey)}\n`)
}

/** Options for every OpenSSH client: nothing from this machine's ssh config, keys or known hosts. */
function clientOptions(identity?: KeyPair): string[] {
  return [
    '-F',
    '/dev/null',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'LogLevel=ERROR',
    ...(identity
      ? ['-i', identity.path, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes']
      : [
          '-o',
          'PubkeyAuthentication=no',
          '-o',
          'PreferredAuthentications=password',
          '-o',
          'NumberOfPasswordPrompts=1',
        ]),
  ]
}

interface ClientResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs an OpenSSH client (ssh, scp, sftp, rsync) with a clean environment; `askpassProgram` answers password prompts. */
function runClient(file: string, args: string[], askpassProgram?: string): Promise<ClientResult> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: clientHome }
  if (askpassProgram) Object.assign(env, { SSH_ASKPASS: askpassProgram, SSH_ASKPASS_REQUIRE: 'force' })
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function ssh(pod: NamespacedPodRuntime, options: string[], command: string, askpassProgram?: string) {
  return runClient('ssh', [...options, '-p', `${pod.sshPort}`, 'akamas@127.0.0.1', command], askpassProgram)
}

async function commandLine(pid: number): Promise<string> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8')
  return raw.replace(/\0$/, '').replaceAll('\0', ' ')
}

describe('sshd of a pod with keys and passwords', () => {
  let pod: NamespacedPodRuntime
  let workDir: string

  beforeAll(async () => {
    ;({ pod, workDir } = await startPod('akamas-mgmt-0', { password: PASSWORD, passwordAuthentication: true }))
  })

  it('logs in with an ed25519 key, in /work as akamas, on the pod’s hostname', async () => {
    const result = await ssh(
      pod,
      clientOptions(userKey),
      'pwd; hostname; id -un; echo $HOME; echo made-by-ssh > ssh.txt',
    )
    expect(result).toEqual({ code: 0, stdout: '/work\nakamas-mgmt-0\nakamas\n/work\n', stderr: '' })
    expect(await readFile(join(workDir, 'ssh.txt'), 'utf8')).toBe('made-by-ssh\n')
    expect((await stat(join(workDir, 'ssh.txt'))).uid).toBe(pod.user.uid)
  })

  it('logs in with an RSA key in PEM format', async () => {
    expect(rsaKey.privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/)
    expect(await ssh(pod, clientOptions(rsaKey), 'hostname')).toMatchObject({ code: 0, stdout: 'akamas-mgmt-0\n' })
  })

  it('refuses a key that is not authorized', async () => {
    const result = await ssh(pod, clientOptions(strangerKey), 'true')
    expect(result.code).toBe(255)
    expect(result.stderr).toMatch(/Permission denied \(publickey,password\)/)
  })

  it('logs in with the password, and refuses a wrong one', async () => {
    expect(await ssh(pod, clientOptions(), 'hostname', askpass)).toMatchObject({ code: 0, stdout: 'akamas-mgmt-0\n' })
    const wrong = await ssh(pod, clientOptions(), 'hostname', wrongAskpass)
    expect(wrong.code).toBe(255)
    expect(wrong.stderr).toMatch(/Permission denied/)
  })

  it('gives a terminal session, and keeps logins out of the machine’s login records', async () => {
    const wtmpBefore = await stat('/var/log/wtmp').catch(() => undefined)
    const result = await ssh(pod, ['-tt', ...clientOptions(userKey)], 'tty; echo $TERM')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^\/dev\/pts\/\d+\r\n\S+\r\n$/)
    const wtmpAfter = await stat('/var/log/wtmp').catch(() => undefined)
    expect(wtmpAfter?.size).toBe(wtmpBefore?.size)
  })

  it('copies files in and out byte for byte with scp (SFTP and legacy protocol)', async () => {
    const original = join(base, 'original.bin')
    const data = randomBytes(300_000)
    await writeFile(original, data)
    const scp = (...args: string[]) => runClient('scp', [...clientOptions(userKey), '-P', `${pod.sshPort}`, ...args])
    expect(await scp(original, 'akamas@127.0.0.1:uploaded.bin')).toMatchObject({ code: 0 })
    expect((await readFile(join(workDir, 'uploaded.bin'))).equals(data)).toBe(true)
    expect(await scp('akamas@127.0.0.1:uploaded.bin', join(base, 'downloaded.bin'))).toMatchObject({ code: 0 })
    expect((await readFile(join(base, 'downloaded.bin'))).equals(data)).toBe(true)
    expect(await scp('-O', original, 'akamas@127.0.0.1:legacy.bin')).toMatchObject({ code: 0 })
    expect((await readFile(join(workDir, 'legacy.bin'))).equals(data)).toBe(true)
  })

  it('serves sftp (internal-sftp), starting in /work', async () => {
    const batch = join(base, 'sftp-batch')
    await writeFile(join(base, 'sftp-upload.txt'), 'via sftp\n')
    await writeFile(
      batch,
      `pwd\nmkdir from-sftp\nput ${join(base, 'sftp-upload.txt')} from-sftp/file.txt\nls from-sftp\n`,
    )
    const result = await runClient('sftp', [
      ...clientOptions(userKey),
      '-P',
      `${pod.sshPort}`,
      '-b',
      batch,
      'akamas@127.0.0.1',
    ])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('Remote working directory: /work')
    expect(result.stdout).toContain('from-sftp/file.txt')
    expect(await readFile(join(workDir, 'from-sftp', 'file.txt'), 'utf8')).toBe('via sftp\n')
  })

  it('syncs folders both ways with rsync over ssh', async () => {
    const source = join(base, 'rsync-source')
    await mkdir(join(source, 'nested'), { recursive: true })
    await writeFile(join(source, 'nested', 'data.bin'), randomBytes(50_000))
    const rsh = ['ssh', ...clientOptions(userKey), '-p', `${pod.sshPort}`].join(' ')
    const rsync = (...args: string[]) => runClient('rsync', ['-a', '-e', rsh, ...args])
    expect(await rsync(`${source}/`, 'akamas@127.0.0.1:synced/')).toMatchObject({ code: 0 })
    const returned = join(base, 'rsync-returned')
    expect(await rsync('akamas@127.0.0.1:synced/', `${returned}/`)).toMatchObject({ code: 0 })
    const original = await readFile(join(source, 'nested', 'data.bin'))
    expect((await readFile(join(workDir, 'synced', 'nested', 'data.bin'))).equals(original)).toBe(true)
    expect((await readFile(join(returned, 'nested', 'data.bin'))).equals(original)).toBe(true)
  })
})

describe('sshd of a pod without password authentication', () => {
  it('refuses the password but takes the key', async () => {
    const { pod } = await startPod('keys-only', { password: PASSWORD, passwordAuthentication: false })
    const result = await ssh(pod, clientOptions(), 'hostname', askpass)
    expect(result.code).toBe(255)
    expect(result.stderr).toMatch(/Permission denied \(publickey\)/)
    expect(await ssh(pod, clientOptions(userKey), 'hostname')).toMatchObject({ code: 0, stdout: 'keys-only\n' })
  })
})

describe('stopping and starting sshd', () => {
  it('drops the open sessions, refuses connections, then listens again', async () => {
    const { pod } = await startPod('restart', { passwordAuthentication: false })
    const session = spawn(
      'ssh',
      [...clientOptions(userKey), '-p', `${pod.sshPort}`, 'akamas@127.0.0.1', 'echo started; sleep 60'],
      { env: { PATH: process.env.PATH, HOME: clientHome }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const sessionEnded = new Promise<number | null>((resolve) => session.once('close', resolve))
    await new Promise((resolve) => session.stdout.once('data', resolve))

    await pod.stopSshd()
    expect(await sessionEnded).toBe(255)
    expect(pod.sshPort).toBeUndefined()
    // Only the namespace holder is left: unshare and its script.
    const commands = await Promise.all((await pod.processesInNamespace()).map((pid) => commandLine(pid)))
    expect(commands.sort()).toEqual([expect.stringMatching(/^sh -c /), expect.stringMatching(/^unshare --mount/)])
    await expect(pod.dial(22)).rejects.toMatchObject({ code: 'ECONNREFUSED' })

    await pod.startSshd()
    await trustHostKeyAt(pod.sshPort!)
    expect(await ssh(pod, clientOptions(userKey), 'hostname')).toMatchObject({ code: 0, stdout: 'restart\n' })
  })
})

describe('starting sshd on a port that another process took meanwhile', () => {
  it('retries on a new port', async () => {
    const blocker = createServer()
    blocker.listen(0, '127.0.0.1')
    await once(blocker, 'listening')
    const takenPort = (blocker.address() as AddressInfo).port
    const stateDir = await mkdtemp(join(base, 'port-race-'))
    const paths = sshdPaths(stateDir)
    const portsToTry = [takenPort]
    await ensurePrivsepDir()
    // sshd alone, outside any pod: this is about how it starts, not about logins.
    const started = await startSshd({
      hostKeyPath: hostKey.path,
      paths,
      user: 'akamas',
      passwordAuthentication: false,
      authorizedKeys: [],
      spawnAsRoot: ([file, ...args], stdio) => spawn(file!, args, { stdio, env: {} }),
      pickPort: async () => portsToTry.shift() ?? findFreePort(),
    })
    try {
      expect(started.port).not.toBe(takenPort)
      expect(await readFile(paths.log, 'utf8')).toMatch(/Address already in use/)
      expect(await readFile(paths.log, 'utf8')).toContain(`Server listening on 127.0.0.1 port ${started.port}.`)
    } finally {
      started.process.kill('SIGKILL')
      await once(started.process, 'exit')
      blocker.close()
    }
  })
})

describe('keys', () => {
  it('are real OpenSSH keys that ssh-keygen can read back', async () => {
    for (const key of [hostKey, userKey, rsaKey]) {
      const { stdout } = await execFileAsync('ssh-keygen', ['-y', '-P', '', '-f', key.path])
      expect(stdout.trim().split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2))
      expect((await stat(key.path)).mode & 0o777).toBe(0o600)
      expect(await readFile(key.path, 'utf8')).toBe(key.privateKey)
    }
    expect(userKey.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/)
    expect(rsaKey.privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/)
  })

  it('can be protected by a passphrase', async () => {
    const key = generateKeyPair(base, 'id_protected', 'ed25519', { passphrase: 'open sesame' })
    await expect(execFileAsync('ssh-keygen', ['-y', '-P', '', '-f', key.path])).rejects.toThrow()
    const { stdout } = await execFileAsync('ssh-keygen', ['-y', '-P', 'open sesame', '-f', key.path])
    expect(stdout.trim().split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2))
  })
})
