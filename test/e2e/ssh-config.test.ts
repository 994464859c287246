/**
 * The generated ssh config, used by the real OpenSSH clients. OpenSSH reads ~/.ssh/config from the password
 * database's home, not from $HOME, so the tests (whose HOME is a temporary folder) name it with -F: exactly the file
 * a user's ssh would read, Include line and all.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, runCli } from '../helpers/cli.js'
import { run, sha256 } from '../helpers/openssh.js'
import { Sandbox } from '../sandbox/index.js'

const masters: string[] = []

afterEach(() => {
  // Master connections are daemons: end the ones this file started (found by their unique ControlPath), by pid.
  for (const controlPath of masters.splice(0)) for (const pid of pidsMentioning(controlPath)) killQuietly(pid)
})

function homeOf(env: NodeJS.ProcessEnv): string {
  return env.HOME!
}

function sshConfigOf(env: NodeJS.ProcessEnv): string {
  return join(homeOf(env), '.ssh', 'config')
}

function mode(path: string): number {
  return statSync(path).mode & 0o777
}

/** Runs an OpenSSH client with the written config, as `ssh akamas …` would. */
function openssh(command: 'ssh' | 'scp' | 'sftp', env: NodeJS.ProcessEnv, args: string[], input?: string) {
  return run(command, ['-F', sshConfigOf(env), ...args], { env, timeoutMs: 60_000, ...(input ? { input } : {}) })
}

function rsync(env: NodeJS.ProcessEnv, args: string[]) {
  return run('rsync', ['-e', `ssh -F ${sshConfigOf(env)}`, ...args], { env, timeoutMs: 60_000 })
}

describe('akm-access ssh-config, key installation', () => {
  let sandbox: Sandbox
  beforeAll(async () => {
    sandbox = await Sandbox.start({ credentials: 'both' })
  })
  afterAll(async () => {
    await sandbox?.stop()
  })

  it('--write includes its own file at the top of ~/.ssh/config, keeps the rest byte for byte, and is idempotent', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const ssh = join(homeOf(env), '.ssh')
    mkdirSync(ssh, { mode: 0o700 })
    const mine = 'Host *\n  ServerAliveInterval 60\n\nHost build\n  HostName build.example.com\n  User ci\n'
    writeFileSync(sshConfigOf(env), mine, { mode: 0o644 })

    const first = await runCli(['ssh-config', '--write', '--accept-new-host-key'], { env })
    expect(first.code).toBe(0)
    expect(first.stdout).toBe('')
    expect(first.stderr).toContain(`wrote the entry for akamas in ${join(ssh, 'akm-access', 'config')}`)
    const config = readFileSync(sshConfigOf(env), 'utf8')
    expect(config).toBe(
      `# Added by akm-access ssh-config: its Host entries (remove these two lines to disable them)\nInclude ${join(ssh, 'akm-access', 'config')}\n\n${mine}`,
    )
    expect(mode(sshConfigOf(env))).toBe(0o644)
    const managed = join(ssh, 'akm-access', 'config')
    expect(mode(managed)).toBe(0o600)
    const entry = readFileSync(managed, 'utf8')
    expect(entry).toMatch(/^Host akamas$/m)
    expect(entry).toMatch(/^ {2}HostKeyAlias akm\/127\.0\.0\.1-\d+\/akamas\/management-pod$/m)
    expect(entry).toMatch(/^ {2}StrictHostKeyChecking yes$/m)
    expect(entry).toMatch(
      /ProxyCommand \S+ \S+\/bin\/run\.js proxy --kubeconfig \S+ --context sandbox --namespace akamas$/m,
    )
    const keyFile = join(homeOf(env), '.config', 'akm-access', 'keys', 'akamas')
    expect(entry).toContain(`IdentityFile ${keyFile}`)
    expect(mode(keyFile)).toBe(0o600)
    expect(mode(join(homeOf(env), '.config', 'akm-access', 'keys'))).toBe(0o700)
    expect(readFileSync(keyFile, 'utf8')).toBe(`${sandbox.userKey.privateKey.trimEnd()}\n`)

    // Again: nothing changes, not even the key's mtime.
    const before = { config, entry, keyTime: statSync(keyFile).mtimeMs }
    const second = await runCli(['ssh-config', '--write'], { env })
    expect(second.code).toBe(0)
    expect(second.stderr).toContain('is up to date')
    expect(readFileSync(sshConfigOf(env), 'utf8')).toBe(before.config)
    expect(readFileSync(managed, 'utf8')).toBe(before.entry)
    expect(statSync(keyFile).mtimeMs).toBe(before.keyTime)

    // A second installation gets its own block; the first is kept.
    const other = await runCli(['ssh-config', '--write', '--host', 'akamas-two'], { env })
    expect(other.code).toBe(0)
    const both = readFileSync(managed, 'utf8')
    expect(both).toMatch(/^Host akamas$/m)
    expect(both).toMatch(/^Host akamas-two$/m)
    expect(readFileSync(sshConfigOf(env), 'utf8')).toBe(before.config)

    // --remove takes out that block only; removing the last one takes the Include out too.
    expect((await runCli(['ssh-config', '--remove', '--host', 'akamas-two'], { env })).code).toBe(0)
    expect(readFileSync(managed, 'utf8')).toBe(before.entry)
    expect((await runCli(['ssh-config', '--remove'], { env })).code).toBe(0)
    expect(readFileSync(sshConfigOf(env), 'utf8')).toBe(mine)
  })

  it('makes ssh, scp, sftp and rsync just work, and follows a rollout', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    expect((await runCli(['ssh-config', '--write', '--accept-new-host-key'], { env })).code).toBe(0)
    // No ~/.ssh before: created private, and so is the config.
    expect(mode(join(homeOf(env), '.ssh'))).toBe(0o700)
    expect(mode(sshConfigOf(env))).toBe(0o600)

    const hello = await openssh('ssh', env, ['akamas', 'echo "$(id -un)@$(hostname):$(pwd)"; exit 4'])
    expect(hello).toMatchObject({ code: 4, stderr: '' })
    expect(hello.stdout.toString()).toBe(`akamas@${sandbox.currentPodName}:/work\n`)

    const dir = mkdtempSync(join(tmpdir(), 'akm-sshcfg-'))
    const payload = randomBytes(4 * 1024 * 1024)
    writeFileSync(join(dir, 'f.bin'), payload)
    expect(await openssh('scp', env, [join(dir, 'f.bin'), 'akamas:/work/'])).toMatchObject({ code: 0, stderr: '' })
    expect(sha256(sandbox.readWorkFile('f.bin'))).toBe(sha256(payload))
    const sftp = await openssh('sftp', env, ['-b', '-', 'akamas'], `get /work/f.bin ${join(dir, 'back.bin')}\n`)
    expect(sftp.code).toBe(0)
    expect(sha256(readFileSync(join(dir, 'back.bin')))).toBe(sha256(payload))
    mkdirSync(join(dir, 'project', 'src'), { recursive: true })
    writeFileSync(join(dir, 'project', 'src', 'main.txt'), 'main\n')
    expect(await rsync(env, ['-a', `${dir}/project/`, 'akamas:/work/project/'])).toMatchObject({ code: 0 })
    expect(sandbox.readWorkFile('project/src/main.txt').toString()).toBe('main\n')

    // A new pod (same host key, same alias): the same entry reaches it, with no question.
    const { newPod } = await sandbox.rollout()
    const after = await openssh('ssh', env, ['akamas', 'hostname'])
    expect(after).toMatchObject({ code: 0, stderr: '' })
    expect(after.stdout.toString()).toBe(`${newPod}\n`)
  })

  it('prints the entry without --write, and writes nothing to ~/.ssh', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const printed = await runCli(['ssh-config', '--accept-new-host-key', '--host', 'mgmt'], { env })
    expect(printed.code).toBe(0)
    expect(printed.stdout).toMatch(
      /^# >>> akm-access mgmt >>>\n# The Akamas management pod .*\nHost mgmt\n {2}User akamas\n/,
    )
    expect(printed.stdout).toMatch(/# <<< akm-access mgmt <<<\n$/)
    expect(readdirSync(homeOf(env))).not.toContain('.ssh')
    // The printed entry works as it is, once saved where the user wants it.
    const file = join(homeOf(env), 'printed.conf')
    writeFileSync(file, printed.stdout)
    const ssh = await run('ssh', ['-F', file, 'mgmt', 'echo works'], { env })
    expect(ssh).toMatchObject({ code: 0, stderr: '' })
    expect(ssh.stdout.toString()).toBe('works\n')
  })

  it('refuses an unknown host key without a terminal unless told to accept it, and writes nothing', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const refused = await runCli(['ssh-config', '--write'], { env })
    expect(refused.code).toBe(14)
    expect(refused.stderr).toMatch(/host key verification failed/)
    expect(readdirSync(homeOf(env))).not.toContain('.ssh')
  })
})

describe('akm-access ssh-config, password-only installation', () => {
  let sandbox: Sandbox
  beforeAll(async () => {
    sandbox = await Sandbox.start({ credentials: 'password' })
  })
  afterAll(async () => {
    await sandbox?.stop()
  })

  it('logs ssh, scp, sftp and rsync in through a master that its askpass hook authenticated; the password is nowhere', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const written = await runCli(['ssh-config', '--write', '--accept-new-host-key'], { env })
    expect(written.code).toBe(0)
    const controlPath = join(homeOf(env), '.config', 'akm-access', 'mux', 'akamas')
    masters.push(controlPath)
    const entry = readFileSync(join(homeOf(env), '.ssh', 'akm-access', 'config'), 'utf8')
    expect(entry).toMatch(/^Match originalhost akamas exec ".+ ssh-master --host akamas .+"$/m)
    expect(entry).toContain(`ControlPath ${controlPath}`)
    expect(entry).not.toContain('IdentityFile')

    const hello = await openssh('ssh', env, ['akamas', 'id -un; hostname'])
    expect(hello).toMatchObject({ code: 0, stderr: '' })
    expect(hello.stdout.toString()).toBe(`akamas\n${sandbox.currentPodName}\n`)

    const dir = mkdtempSync(join(tmpdir(), 'akm-sshcfg-pw-'))
    const payload = randomBytes(2 * 1024 * 1024)
    writeFileSync(join(dir, 'f.bin'), payload)
    expect(await openssh('scp', env, [join(dir, 'f.bin'), 'akamas:/work/pw.bin'])).toMatchObject({ code: 0 })
    expect(sha256(sandbox.readWorkFile('pw.bin'))).toBe(sha256(payload))
    const sftp = await openssh('sftp', env, ['-b', '-', 'akamas'], `get /work/pw.bin ${join(dir, 'back.bin')}\n`)
    expect(sftp.code).toBe(0)
    expect(sha256(readFileSync(join(dir, 'back.bin')))).toBe(sha256(payload))
    mkdirSync(join(dir, 'tree'))
    writeFileSync(join(dir, 'tree', 'r.txt'), 'r\n')
    expect(await rsync(env, ['-a', `${dir}/tree/`, 'akamas:/work/pwtree/'])).toMatchObject({ code: 0 })
    expect(sandbox.readWorkFile('pwtree/r.txt').toString()).toBe('r\n')

    // One master served them all.
    const check = await openssh('ssh', env, ['-O', 'check', 'akamas'])
    expect(check.stderr).toMatch(/Master running \(pid=\d+\)/)
    const masterPid = Number(/pid=(\d+)/.exec(check.stderr)![1])

    // The password is in no file we wrote, and in no process's command line or environment.
    for (const file of filesUnder(homeOf(env))) {
      expect(readFileSync(file).includes(sandbox.password), file).toBe(false)
    }
    expect(readFileSync(`/proc/${masterPid}/environ`).includes(sandbox.password)).toBe(false)
    for (const pid of allPids()) {
      for (const part of ['cmdline', 'environ']) {
        const content = readQuietly(`/proc/${pid}/${part}`)
        expect(content?.includes(sandbox.password) ?? false, `/proc/${pid}/${part}`).toBe(false)
      }
    }

    // The master closes on request; the next ssh starts another.
    expect((await openssh('ssh', env, ['-O', 'exit', 'akamas'])).code).toBe(0)
    const again = await openssh('ssh', env, ['akamas', 'echo again'])
    expect(again).toMatchObject({ code: 0, stderr: '' })
    expect(again.stdout.toString()).toBe('again\n')
  })

  it('starts a new master after the pod is replaced', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    expect((await runCli(['ssh-config', '--write', '--accept-new-host-key'], { env })).code).toBe(0)
    masters.push(join(homeOf(env), '.config', 'akm-access', 'mux', 'akamas'))
    expect((await openssh('ssh', env, ['akamas', 'hostname'])).stdout.toString()).toBe(`${sandbox.currentPodName}\n`)
    const { newPod } = await sandbox.rollout()
    const after = await openssh('ssh', env, ['akamas', 'hostname'])
    expect(after).toMatchObject({ code: 0, stderr: '' })
    expect(after.stdout.toString()).toBe(`${newPod}\n`)
  })

  it('several ssh at once share one master', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    expect((await runCli(['ssh-config', '--write', '--accept-new-host-key'], { env })).code).toBe(0)
    const controlPath = join(homeOf(env), '.config', 'akm-access', 'mux', 'akamas')
    masters.push(controlPath)
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, index) => openssh('ssh', env, ['akamas', `echo ${index}`])),
    )
    expect(results.map((result) => result.stdout.toString())).toEqual(['0\n', '1\n', '2\n', '3\n', '4\n'])
    expect(
      pidsMentioning(controlPath).filter((pid) => readQuietly(`/proc/${pid}/cmdline`)?.includes('-M')),
    ).toHaveLength(1)
  })
})

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

function readQuietly(file: string): Buffer | undefined {
  try {
    return readFileSync(file)
  } catch {
    return undefined
  }
}

function pidsMentioning(text: string): number[] {
  return allPids().filter((pid) => readQuietly(`/proc/${pid}/cmdline`)?.includes(text))
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM')
  } catch {}
}
