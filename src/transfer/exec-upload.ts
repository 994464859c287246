/**
 * Uploads a few local files and folders into one new pod folder with a single exec of `tar -x`: one round trip, no
 * SSH credentials or host key needed (what `akamas` uses for the files its arguments name). The same exec then
 * lists the SHA-256 of every file it unpacked, which we compare with the bytes we sent.
 */
import { stat } from 'node:fs/promises'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import { openPodExec } from '../session/pod-exec.js'
import type { ManagementPod } from '../target/find-target.js'
import { localFileError, verificationFailed } from './errors.js'
import { type TarEntry, tarStream } from './tar.js'
import { scanLocalTree } from './tree.js'

export interface ExecUpload {
  local: string
  kind: 'file' | 'dir'
  /** Absolute pod path, inside `remoteDir`. */
  remote: string
}

/** $1 is the folder. umask 077: what is uploaded may be credentials; only the pod user needs to read it. */
const unpackScript =
  'set -e; umask 077; mkdir -p -- "$1"; cd -- "$1"; tar -x -f -; find . -type f -exec sha256sum -- {} +'

export async function uploadOverExec(
  client: KubeClient,
  target: ManagementPod,
  remoteDir: string,
  uploads: readonly ExecUpload[],
): Promise<{ files: number; bytes: number }> {
  const entries = await tarEntries(remoteDir, uploads)
  const sent = new Map<string, string>()
  const session = await openPodExec(client, target, {
    argv: ['sh', '-c', unpackScript, 'akm-upload', remoteDir],
    tty: false,
  })
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  session.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
  session.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk))
  let sendError: unknown
  await pipeline(Readable.from(tarStream(entries, sent)), session.stdin).catch((error: unknown) => {
    sendError = error
    session.abort('upload failed')
  })
  const end = await session.ended
  if (sendError && !(sendError as { code?: string }).code?.startsWith('ERR_STREAM')) {
    throw localFileError(sendError, 'read', (sendError as { path?: string }).path ?? 'a file to upload')
  }
  const errorText = Buffer.concat(stderr).toString('utf8').trim()
  if (end.kind !== 'exit' || end.code !== 0) {
    const missingTar = end.kind === 'exit' && end.code === 127
    throw new AccessError(
      missingTar
        ? 'cannot upload the files: the management container has no tar'
        : `cannot upload the files to ${remoteDir} in pod ${target.pod.name}: ${errorText || describeEnd(end)}`,
      {
        exitCode:
          end.kind === 'lost' ? ExitCode.connectionLost : missingTar ? ExitCode.remoteFailed : ExitCode.remoteFile,
        hint: missingTar
          ? 'copy them with akm-access cp, then name them as :/work/… paths'
          : 'check that /work has room and is writable by the pod user',
      },
    )
  }
  const received = parseSha256sum(Buffer.concat(stdout).toString('utf8'))
  let bytes = 0
  for (const entry of entries) if (entry.type === 'file') bytes += entry.size ?? 0
  for (const [name, hash] of sent) {
    const got = received.get(name)
    if (got !== hash) {
      throw verificationFailed(
        posix.join(remoteDir, name),
        got ? 'its SHA-256 in the pod differs' : 'it is missing in the pod',
      )
    }
  }
  return { files: sent.size, bytes }
}

async function tarEntries(remoteDir: string, uploads: readonly ExecUpload[]): Promise<TarEntry[]> {
  const entries: TarEntry[] = []
  const folders = new Set<string>()
  const now = Math.floor(Date.now() / 1000)
  const ensureParents = (name: string) => {
    const parts = name.split('/').slice(0, -1)
    for (let i = 1; i <= parts.length; i++) {
      const folder = parts.slice(0, i).join('/')
      if (folders.has(folder)) continue
      folders.add(folder)
      entries.push({ name: folder, type: 'dir', mode: 0o700, mtime: now })
    }
  }
  for (const upload of uploads) {
    const name = posix.relative(remoteDir, upload.remote)
    ensureParents(name)
    if (upload.kind === 'file') {
      const info = await stat(upload.local).catch((error: unknown) => {
        throw localFileError(error, 'read', upload.local)
      })
      entries.push({
        name,
        type: 'file',
        mode: info.mode & 0o7777,
        mtime: Math.floor(info.mtimeMs / 1000),
        source: upload.local,
        size: info.size,
      })
      continue
    }
    const tree = await scanLocalTree(upload.local).catch((error: unknown) => {
      throw localFileError(error, 'read', (error as { path?: string }).path ?? upload.local)
    })
    for (const item of tree.entries) {
      const itemName = item.path === '' ? name : `${name}/${item.path}`
      const source = item.path === '' ? upload.local : `${upload.local.replace(/\/+$/, '')}/${item.path}`
      if (item.type === 'file')
        entries.push({ name: itemName, type: 'file', mode: item.mode, mtime: item.mtime, source, size: item.size })
      else if (item.type === 'dir')
        entries.push({ name: itemName, type: 'dir', mode: item.mode | 0o700, mtime: item.mtime })
      else entries.push({ name: itemName, type: 'symlink', mode: 0o777, mtime: item.mtime, target: item.target ?? '' })
    }
  }
  return entries
}

/**
 * `HASH  ./name` per line; GNU sha256sum writes a name holding a backslash or newline escaped, with a leading
 * backslash on the line.
 */
export function parseSha256sum(output: string): Map<string, string> {
  const result = new Map<string, string>()
  for (const line of output.split('\n')) {
    const match = /^(\\?)([0-9a-f]{64}) [ *](.*)$/.exec(line)
    if (!match) continue
    let name = match[3]!
    if (match[1]) name = name.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'))
    result.set(name.replace(/^\.\//, ''), match[2]!)
  }
  return result
}

function describeEnd(end: { kind: string; code?: number; reason?: string; message?: string }): string {
  if (end.kind === 'exit') return `exit status ${end.code}`
  return end.reason ?? end.message ?? end.kind
}
