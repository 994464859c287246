import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, cliInTerminal, runCli, type Terminal } from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
let env: NodeJS.ProcessEnv
let local: string
const terminals: Terminal[] = []
const mounts: string[] = []
const MiB = 1024 * 1024

beforeAll(async () => {
  sandbox = await Sandbox.start()
  env = cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color' })
  local = mkdtempSync(join(tmpdir(), 'akm-cp-'))
  // Trust the host key once, as a person would on first use.
  const first = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
  expect(first.code).toBe(0)
})
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  for (const mount of mounts) execFileSync('umount', ['-l', mount])
  await sandbox?.stop()
  rmSync(local, { recursive: true, force: true })
})

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
const cp = (args: string[], timeoutMs = 60_000) => runCli(['cp', ...args], { env, timeoutMs })

/** A file of `size` pseudo-random bytes (written in 1 MiB pieces), and its SHA-256. */
async function bigFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path, 'w')
  for (let offset = 0; offset < size; offset += MiB) {
    // Random: a chunk written at the wrong offset cannot go unnoticed.
    const chunk = randomBytes(Math.min(MiB, size - offset))
    hash.update(chunk)
    await handle.write(chunk)
  }
  await handle.close()
  return hash.digest('hex')
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path)
  for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Every name in a folder tree (relative), for "nothing else is there" checks. */
function listTree(root: string, prefix = ''): string[] {
  return readdirSync(root, { withFileTypes: true }).flatMap((entry) => {
    const relative = prefix + entry.name
    return entry.isDirectory() ? [`${relative}/`, ...listTree(join(root, entry.name), `${relative}/`)] : [relative]
  })
}

/** A folder in the pod's /work that the pod user owns (as if it had made it). */
function podFolder(name: string): string {
  const path = join(sandbox.workDir, name)
  mkdirSync(path, { recursive: true })
  const owner = statSync(sandbox.workDir)
  chownSync(path, owner.uid, owner.gid)
  return path
}

const leftovers = (root: string) => listTree(root).filter((name) => /\.akm-[0-9a-z]{6}\.part$/.test(name))

function makeTree(root: string): void {
  mkdirSync(join(root, 'studies', 'with space é'), { recursive: true })
  mkdirSync(join(root, 'empty'))
  writeFileSync(join(root, 'top.yaml'), 'name: top\n')
  writeFileSync(join(root, 'studies', 'a.yaml'), 'kind: study\n')
  writeFileSync(join(root, 'studies', 'with space é', "it's $HOME *.json"), Buffer.from([0, 1, 2, 255, 10]))
  writeFileSync(join(root, 'run.sh'), '#!/bin/sh\necho run\n')
  chmodSync(join(root, 'run.sh'), 0o750)
  chmodSync(join(root, 'studies', 'a.yaml'), 0o604)
  symlinkSync('studies/a.yaml', join(root, 'link-to-a'))
  utimesSync(join(root, 'top.yaml'), new Date('2021-05-06T07:08:09Z'), new Date('2021-05-06T07:08:09Z'))
  utimesSync(join(root, 'studies'), new Date('2022-01-01T00:00:00Z'), new Date('2022-01-01T00:00:00Z'))
}

/** Asserts that two trees hold the same names, bytes, modes, mtimes (to the second) and links. */
function expectSameTree(a: string, b: string): void {
  expect(listTree(b).sort()).toEqual(listTree(a).sort())
  for (const name of listTree(a)) {
    const left = lstatSync(join(a, name))
    const right = lstatSync(join(b, name))
    expect({ name, mode: right.mode.toString(8) }).toEqual({ name, mode: left.mode.toString(8) })
    if (left.isSymbolicLink()) {
      expect(readlinkSync(join(b, name))).toBe(readlinkSync(join(a, name)))
      continue
    }
    expect({ name, mtime: Math.floor(right.mtimeMs / 1000) }).toEqual({ name, mtime: Math.floor(left.mtimeMs / 1000) })
    if (left.isFile()) expect(sha256(readFileSync(join(b, name)))).toBe(sha256(readFileSync(join(a, name))))
  }
}

describe('akm-access cp', () => {
  it('copies a folder tree to the pod and back: bytes, modes, times and links kept', async () => {
    const source = join(local, 'tree')
    makeTree(source)
    const up = await cp([source, ':/work/'])
    expect(up).toMatchObject({ code: 0, stdout: '', stderr: '' })
    expectSameTree(source, join(sandbox.workDir, 'tree'))

    const back = join(local, 'tree-back')
    const down = await cp(['--json', ':tree', back])
    expect(down.code).toBe(0)
    expect(JSON.parse(down.stdout)).toMatchObject({ direction: 'download', files: 4, checksummed: 4, symlinks: 1 })
    expectSameTree(source, back)
    expect(leftovers(sandbox.workDir)).toEqual([])
    expect(leftovers(local)).toEqual([])
  })

  it('follows cp’s destination rules: into a folder, onto a name, a trailing / creates a folder', async () => {
    writeFileSync(join(local, 'one.yaml'), 'one\n')
    writeFileSync(join(local, 'two.yaml'), 'two\n')
    podFolder('existing')
    expect((await cp([join(local, 'one.yaml'), ':existing'])).code).toBe(0)
    expect(sandbox.readWorkFile('existing/one.yaml').toString()).toBe('one\n')
    expect((await cp([join(local, 'one.yaml'), ':renamed.yaml'])).code).toBe(0)
    expect(sandbox.readWorkFile('renamed.yaml').toString()).toBe('one\n')
    expect((await cp([join(local, 'one.yaml'), join(local, 'two.yaml'), ':/work/new-folder/'])).code).toBe(0)
    expect(readdirSync(join(sandbox.workDir, 'new-folder')).sort()).toEqual(['one.yaml', 'two.yaml'])
    // Replacing an existing file keeps nothing of the old one.
    writeFileSync(join(local, 'one.yaml'), 'one, shorter\n')
    expect((await cp([join(local, 'one.yaml'), ':renamed.yaml'])).code).toBe(0)
    expect(sandbox.readWorkFile('renamed.yaml').toString()).toBe('one, shorter\n')
    // Names that look like flags, after --.
    writeFileSync(join(local, '-dash.txt'), 'dash\n')
    const dashedAbsolute = await cp(['--', join(local, '-dash.txt'), ':'])
    expect(dashedAbsolute.code).toBe(0)
    expect(sandbox.readWorkFile('-dash.txt').toString()).toBe('dash\n')
  })

  it('refuses unclear directions with exit 2 and a hint', async () => {
    const bothLocal = await cp(['a', 'b'])
    expect(bothLocal.code).toBe(2)
    expect(bothLocal.stderr).toMatch(/neither side is in the pod/)
    expect(bothLocal.stderr).toMatch(/Hint: write pod paths with a leading colon/)
    expect((await cp([':a', ':b'])).stderr).toMatch(/both sides are in the pod/)
    expect((await cp(['a', ':b', 'c'])).stderr).toMatch(/all be local or all in the pod/)
    expect((await cp(['only-one'])).code).toBe(2)
  })

  it('says which side is missing a file: exit 17 locally, 18 in the pod', async () => {
    const localMissing = await cp([join(local, 'nope.txt'), ':'])
    expect(localMissing.code).toBe(17)
    expect(localMissing.stderr).toContain(`${join(local, 'nope.txt')}: no such file or directory`)
    const remoteMissing = await cp([':/work/nope.txt', local])
    expect(remoteMissing.code).toBe(18)
    expect(remoteMissing.stderr).toContain(':/work/nope.txt: no such file or directory')
  })

  it('reports permission denied in the pod with exit 18', async () => {
    const locked = join(sandbox.workDir, 'locked')
    mkdirSync(locked)
    chmodSync(locked, 0o755) // owned by root on the host: the pod user cannot write in it
    writeFileSync(join(local, 'x.txt'), 'x')
    const result = await cp([join(local, 'x.txt'), ':locked/'])
    expect(result.code).toBe(18)
    expect(result.stderr).toMatch(/cannot create a file in :\/work\/locked in pod \S+: permission denied/)
    expect(readdirSync(locked)).toEqual([])
  })

  it('moves 256 MiB up and down byte for byte, verified by SHA-256', { timeout: 240_000 }, async () => {
    const big = join(local, 'big.bin')
    const expected = await bigFile(big, 256 * MiB)
    const up = await cp(['--json', big, ':big.bin'], 180_000)
    expect(up.code, up.stderr).toBe(0)
    expect(JSON.parse(up.stdout)).toMatchObject({ files: 1, bytes: 256 * MiB, checksummed: 1 })
    expect(await fileHash(join(sandbox.workDir, 'big.bin'))).toBe(expected)

    const back = join(local, 'big-back.bin')
    const down = await cp(['--json', ':big.bin', back], 180_000)
    expect(down.code, down.stderr).toBe(0)
    expect(JSON.parse(down.stdout)).toMatchObject({ files: 1, bytes: 256 * MiB, checksummed: 1 })
    expect(await fileHash(back)).toBe(expected)
    rmSync(back)
  })

  it('fails with exit 17 and leaves no temporary file when the local disk is full', async () => {
    const small = join(local, 'small-disk')
    mkdirSync(small)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small])
    mounts.push(small)
    writeFileSync(join(sandbox.workDir, 'four-mib.bin'), Buffer.alloc(4 * MiB, 7))
    const result = await cp([':four-mib.bin', `${small}/`])
    expect(result.code).toBe(17)
    expect(result.stderr).toMatch(/cannot write \S+four-mib\.bin: no space left on the local disk/)
    expect(result.stderr).toMatch(/Hint: free some space/)
    expect(readdirSync(small)).toEqual([])
  })

  it('fails with exit 17 and leaves nothing behind when a local folder is not writable', async () => {
    // As root every folder is writable: run the CLI as nobody, with a HOME and kubeconfig of its own.
    const home = mkdtempSync(join(tmpdir(), 'akm-nobody-'))
    const kubeconfig = join(home, 'kubeconfig')
    copyFileSync(sandbox.kubeconfigPath, kubeconfig)
    const knownHosts = join(env.HOME!, '.config', 'akm-access', 'known_hosts')
    mkdirSync(join(home, '.config', 'akm-access'), { recursive: true })
    copyFileSync(knownHosts, join(home, '.config', 'akm-access', 'known_hosts'))
    execFileSync('chown', ['-R', 'nobody:nogroup', home])
    const readOnly = join(local, 'read-only')
    mkdirSync(readOnly)
    chmodSync(readOnly, 0o755)
    chmodSync(local, 0o755)
    writeFileSync(join(sandbox.workDir, 'small.txt'), 'small\n')
    const nobodyEnv = { ...cliEnv(kubeconfig), HOME: home }
    const asNobody = ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath]
    const result = await runCommand(
      'setpriv',
      [...asNobody, join(process.cwd(), 'bin/run.js'), 'cp', ':small.txt', readOnly],
      nobodyEnv,
    )
    expect(result.code, result.stderr).toBe(17)
    expect(result.stderr).toContain(`cannot create a file in ${readOnly}: permission denied`)
    expect(readdirSync(readOnly)).toEqual([])

    // The other way: a local file nobody may read.
    const secret = join(local, 'unreadable.txt')
    writeFileSync(secret, 'secret')
    chmodSync(secret, 0o600)
    const upload = await runCommand(
      'setpriv',
      [...asNobody, join(process.cwd(), 'bin/run.js'), 'cp', secret, ':'],
      nobodyEnv,
    )
    expect(upload.code).toBe(17)
    expect(upload.stderr).toContain(`cannot read ${secret}: permission denied`)
    expect(leftovers(sandbox.workDir)).toEqual([])
    chownSync(home, 0, 0)
    rmSync(home, { recursive: true, force: true })
  })

  it('shows a progress bar on a terminal and a summary; Ctrl-C exits 130 and removes the partial file', async () => {
    const file = join(local, 'slow.bin')
    await bigFile(file, 48 * MiB)
    sandbox.streamFaults.delayMs = 40
    const terminal = cliInTerminal(['cp', file, ':slow.bin'], env, { cols: 120, rows: 20 })
    terminals.push(terminal)
    await terminal.waitFor(/\d+%\s+\[#*>?\.*\]\s+[\d.]+\/48\.0 MiB\s+[\d.]+ [KM]iB\/s\s+ETA \d+:\d\d/, {
      timeoutMs: 30_000,
    })
    terminal.type('\x03')
    expect((await terminal.exit(30_000)).code).toBe(130)
    expect(terminal.output).toContain('interrupted: no partial file was left behind')
    expect(leftovers(sandbox.workDir)).toEqual([])
    expect(readdirSync(sandbox.workDir)).not.toContain('slow.bin')

    sandbox.clearFaults()
    const done = cliInTerminal(['cp', ':/work/tree/top.yaml', join(local, 'top-copy.yaml')], env, {
      cols: 120,
      rows: 20,
    })
    terminals.push(done)
    expect((await done.exit(30_000)).code).toBe(0)
    expect(done.output).toMatch(/received 1 file \(10 B\) in [\d.]+ s.*, verified by SHA-256/)
  })

  it('a download cut off by a lost connection exits 255 and leaves no partial file', async () => {
    await bigFile(join(sandbox.workDir, 'cut.bin'), 32 * MiB)
    const target = join(local, 'cut-target')
    mkdirSync(target)
    sandbox.streamFaults.dropAfterBytes = 8 * MiB
    const result = await cp([':cut.bin', `${target}/`])
    expect(result.code).toBe(255)
    expect(result.stderr).toMatch(/the connection to pod \S+ was lost/)
    expect(readdirSync(target)).toEqual([])
  })
})

function runCommand(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
