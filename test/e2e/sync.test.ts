import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, cliPath, runCli } from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
let env: NodeJS.ProcessEnv
let local: string
const children = new Set<ChildProcess>()
const MiB = 1024 * 1024

beforeAll(async () => {
  sandbox = await Sandbox.start()
  env = cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color' })
  local = mkdtempSync(join(tmpdir(), 'akm-sync-'))
  expect((await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })).code).toBe(0)
})
afterEach(() => {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
  rmSync(local, { recursive: true, force: true })
})

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
const sync = (args: string[], timeoutMs = 60_000) => runCli(['sync', ...args], { env, timeoutMs })

interface SyncJson {
  direction: string
  files: number
  bytes: number
  deleted: number
  unchanged: number
  dryRun: boolean
  changes: { kind: string; path: string; type: string }[]
}

async function syncJson(args: string[], timeoutMs = 60_000): Promise<SyncJson> {
  const result = await sync(['--json', ...args], timeoutMs)
  expect(result.code, result.stderr).toBe(0)
  return JSON.parse(result.stdout) as SyncJson
}

function listTree(root: string, prefix = ''): string[] {
  return readdirSync(root, { withFileTypes: true }).flatMap((entry) => {
    const relative = prefix + entry.name
    return entry.isDirectory() ? [`${relative}/`, ...listTree(join(root, entry.name), `${relative}/`)] : [relative]
  })
}

/** Same names, bytes and modification times (to the second). */
function expectSameTree(a: string, b: string): void {
  expect(listTree(b).sort()).toEqual(listTree(a).sort())
  for (const name of listTree(a)) {
    const left = lstatSync(join(a, name))
    if (!left.isFile()) continue
    const right = lstatSync(join(b, name))
    expect({ name, mtime: Math.floor(right.mtimeMs / 1000), size: right.size }).toEqual({
      name,
      mtime: Math.floor(left.mtimeMs / 1000),
      size: left.size,
    })
    if (left.size < 10 * MiB) expect(sha256(readFileSync(join(b, name)))).toBe(sha256(readFileSync(join(a, name))))
  }
}

async function bigFile(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w')
  for (let offset = 0; offset < size; offset += MiB) await handle.write(randomBytes(Math.min(MiB, size - offset)))
  await handle.close()
}

describe('akm-access sync', () => {
  it('sends a tree, then only what changed, deletes with --delete, and nothing for an unchanged tree', {
    timeout: 180_000,
  }, async () => {
    const resources = join(local, 'resources')
    mkdirSync(join(resources, 'studies', 'nested'), { recursive: true })
    writeFileSync(join(resources, 'system.yaml'), 'system\n')
    writeFileSync(join(resources, 'studies', 'one.yaml'), 'one\n')
    writeFileSync(join(resources, 'studies', 'nested', 'two.yaml'), 'two\n')
    writeFileSync(join(resources, 'gone.yaml'), 'to be deleted\n')
    await bigFile(join(resources, 'data.bin'), 100 * MiB)

    const first = await syncJson([resources], 120_000)
    expect(first).toMatchObject({ direction: 'upload', files: 5, deleted: 0, unchanged: 0 })
    expect(first.bytes).toBe(100 * MiB + 7 + 4 + 4 + 14)
    const remote = join(sandbox.workDir, 'resources') // the default: /work/<name of the folder>
    expectSameTree(resources, remote)
    expect(await fileSha(join(remote, 'data.bin'))).toBe(await fileSha(join(resources, 'data.bin')))

    // Unchanged: nothing moves.
    const again = await syncJson([resources])
    expect(again).toMatchObject({ files: 0, bytes: 0, deleted: 0, unchanged: 5, changes: [] })

    // A change (same size, newer time), a new folder with a file, a deletion.
    writeFileSync(join(resources, 'system.yaml'), 'SYSTEM\n')
    utimesSync(join(resources, 'system.yaml'), new Date(), new Date(Date.now() + 5000))
    mkdirSync(join(resources, 'workflows'))
    writeFileSync(join(resources, 'workflows', 'wf.yaml'), 'workflow\n')
    rmSync(join(resources, 'gone.yaml'))
    const kept = await syncJson([resources, ':resources'])
    expect(kept).toMatchObject({ files: 2, deleted: 0, unchanged: 3 })
    expect(existsSync(join(remote, 'gone.yaml'))).toBe(true) // without --delete it stays

    const dry = await sync(['--dry-run', '--delete', resources])
    expect(dry.code).toBe(0)
    expect(dry.stdout).toBe('delete   gone.yaml\n')
    expect(dry.stderr).toBe('would have sent 0 files (0 B), would have deleted 1, 5 unchanged (dry run)\n')
    expect(existsSync(join(remote, 'gone.yaml'))).toBe(true)

    const deleted = await sync(['--delete', resources])
    expect(deleted).toMatchObject({ code: 0, stdout: '', stderr: 'sent 0 files (0 B), deleted 1, 5 unchanged\n' })
    expectSameTree(resources, remote)
  })

  it('with --checksum, sends a file whose content changed though its size and time did not', async () => {
    const dir = join(local, 'checksummed')
    mkdirSync(dir)
    writeFileSync(join(dir, 'same-size.yaml'), 'aaaa\n')
    await syncJson([dir])
    const stamp = statSync(join(dir, 'same-size.yaml')).mtime
    writeFileSync(join(dir, 'same-size.yaml'), 'bbbb\n')
    utimesSync(join(dir, 'same-size.yaml'), stamp, stamp)
    expect(await syncJson([dir])).toMatchObject({ files: 0, unchanged: 1 })
    expect(await syncJson(['--checksum', dir])).toMatchObject({ files: 1, unchanged: 0 })
    expect(sandbox.readWorkFile('checksummed/same-size.yaml').toString()).toBe('bbbb\n')
    expect(await syncJson(['--checksum', dir])).toMatchObject({ files: 0, unchanged: 1 })
  })

  it('pulls a pod folder with --pull, and leaves excluded names alone on both sides', async () => {
    const podDir = join(sandbox.workDir, 'results')
    mkdirSync(join(podDir, 'run-1'), { recursive: true })
    writeFileSync(join(podDir, 'run-1', 'report.csv'), 'a,b\n1,2\n')
    writeFileSync(join(podDir, 'summary.json'), '{}\n')
    writeFileSync(join(podDir, 'debug.log'), 'noise\n')
    execChown(podDir)
    const copy = join(local, 'results-copy')
    const pulled = await syncJson(['--pull', '--exclude', '*.log', copy, ':/work/results'])
    expect(pulled).toMatchObject({ direction: 'download', files: 2 })
    expect(listTree(copy).sort()).toEqual(['run-1/', 'run-1/report.csv', 'summary.json'])
    expect(readFileSync(join(copy, 'run-1', 'report.csv'), 'utf8')).toBe('a,b\n1,2\n')

    writeFileSync(join(copy, 'local-only.txt'), 'x')
    writeFileSync(join(copy, 'keep.log'), 'excluded, so not deleted')
    const again = await syncJson(['--pull', '--delete', '--exclude', '*.log', copy, ':results'])
    expect(again).toMatchObject({ files: 0, deleted: 1, unchanged: 2 })
    expect(listTree(copy).sort()).toEqual(['keep.log', 'run-1/', 'run-1/report.csv', 'summary.json'])
  })

  it('refuses a destination that is not a pod path, and --watch with --pull', async () => {
    const notPod = await sync([local, '/work/x'])
    expect(notPod.code).toBe(2)
    expect(notPod.stderr).toMatch(/Hint: write it with a leading colon: :\/work\/x/)
    expect((await sync(['--pull', '--watch', local, ':x'])).code).toBe(2)
    const missing = await sync([join(local, 'nope')])
    expect(missing.code).toBe(17)
  })

  it('--watch syncs each change as it happens, and Ctrl-C ends it cleanly', { timeout: 60_000 }, async () => {
    const dir = join(local, 'watched')
    mkdirSync(dir)
    writeFileSync(join(dir, 'first.yaml'), '1\n')
    const child = spawn(process.execPath, [cliPath, 'sync', '--watch', '--delete', dir], { env, stdio: 'pipe' })
    children.add(child)
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    const waitFor = async (pattern: RegExp, from = 0) => {
      const deadline = Date.now() + 20_000
      while (!pattern.test(stderr.slice(from))) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} in:\n${stderr}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    await waitFor(/watching .*watched for changes/)
    expect(stderr).toContain('sent 1 file (2 B), deleted 0, 0 unchanged')

    let mark = stderr.length
    mkdirSync(join(dir, 'later'))
    writeFileSync(join(dir, 'later', 'second.yaml'), '22\n')
    await waitFor(/sent 1 file \(3 B\), deleted 0, 1 unchanged/, mark)
    expect(sandbox.readWorkFile('watched/later/second.yaml').toString()).toBe('22\n')

    // A file in the folder created after the watch began is seen too.
    mark = stderr.length
    writeFileSync(join(dir, 'later', 'third.yaml'), '333\n')
    rmSync(join(dir, 'first.yaml'))
    await waitFor(/sent 1 file \(4 B\), deleted 1, 1 unchanged/, mark)
    expect(existsSync(join(sandbox.workDir, 'watched', 'first.yaml'))).toBe(false)

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGINT')
    expect(await exited).toBe(0)
  })

  it('--watch survives a pod restart: it reconnects to the new pod and goes on', { timeout: 90_000 }, async () => {
    const dir = join(local, 'rolled')
    mkdirSync(dir)
    writeFileSync(join(dir, 'before.yaml'), 'before\n')
    const child = spawn(process.execPath, [cliPath, 'sync', '--watch', dir], { env, stdio: 'pipe' })
    children.add(child)
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    const waitFor = async (pattern: RegExp, from = 0) => {
      const deadline = Date.now() + 40_000
      while (!pattern.test(stderr.slice(from))) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} in:\n${stderr}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    await waitFor(/watching/)
    const { newPod } = await sandbox.rollout()
    const mark = stderr.length
    writeFileSync(join(dir, 'after.yaml'), 'after the rollout\n')
    await waitFor(new RegExp(`reconnected to ${newPod}`), mark)
    await waitFor(/sent 1 file \(18 B\)/, mark)
    expect(sandbox.readWorkFile('rolled/after.yaml').toString()).toBe('after the rollout\n')
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGINT')
    expect(await exited).toBe(0)
  })
})

function execChown(path: string): void {
  // Files made by the test (root) in the pod's /work, given to the pod user as if it had made them.
  const owner = statSync(sandbox.workDir)
  for (const name of ['', ...listTree(path)]) {
    const full = join(path, name)
    chownSync(full, owner.uid, owner.gid)
  }
}

async function fileSha(path: string): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path)
  for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer)
  return hash.digest('hex')
}
