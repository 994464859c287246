import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { RemoteFile } from '../../src/ssh/sftp.js'
import { parseSha256sum } from '../../src/transfer/exec-upload.js'
import { receiveFileContent, Slots, sendFileContent } from '../../src/transfer/pipeline.js'
import { formatBytes, formatDuration, renderProgressLine } from '../../src/transfer/progress.js'
import { parsePathSpec, resolveRemotePath } from '../../src/transfer/remote-path.js'
import { paxRecord, type TarEntry, tarStream } from '../../src/transfer/tar.js'

const dir = mkdtempSync(join(tmpdir(), 'akm-transfer-unit-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** A pod file in memory whose answers come back in a shuffled order and, for reads, sometimes short. */
function memoryFile(content: Buffer, options: { shortReads?: boolean } = {}): RemoteFile & { data: Buffer } {
  const file = {
    data: Buffer.from(content),
    write(data: Buffer, position: number) {
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          if (position + data.length > file.data.length) {
            file.data = Buffer.concat([file.data, Buffer.alloc(position + data.length - file.data.length)])
          }
          data.copy(file.data, position)
          resolve()
        }, Math.random() * 3),
      )
    },
    read(length: number, position: number) {
      const take = options.shortReads && length > 10 ? Math.ceil(length / 3) : length
      return new Promise<Buffer>((resolve) =>
        setTimeout(() => resolve(Buffer.from(file.data.subarray(position, position + take))), Math.random() * 3),
      )
    },
    setAttributes: async () => {},
    sync: async () => {},
    close: async () => {},
  }
  return file
}

describe('the SFTP pipeline', () => {
  it('sends a file with many writes in flight, in any completion order, and hashes what it sent', async () => {
    const content = randomBytes(1_000_003)
    writeFileSync(join(dir, 'send.bin'), content)
    const source = await open(join(dir, 'send.bin'))
    const target = memoryFile(Buffer.alloc(0))
    let acknowledged = 0
    const result = await sendFileContent(source, target, content.length, {
      chunkSize: 4096,
      slots: new Slots(16),
      onBytes: (n) => {
        acknowledged += n
      },
    })
    await source.close()
    expect(result).toEqual({ bytes: content.length, sha256: sha256(content) })
    expect(target.data.equals(content)).toBe(true)
    expect(acknowledged).toBe(content.length)
  })

  it('receives a file in order despite short reads and shuffled answers', async () => {
    const content = randomBytes(777_777)
    const target = await open(join(dir, 'receive.bin'), 'w')
    const result = await receiveFileContent(memoryFile(content, { shortReads: true }), target, content.length, {
      chunkSize: 5000,
      slots: new Slots(8),
    })
    await target.close()
    expect(result.sha256).toBe(sha256(content))
    expect(readFileSync(join(dir, 'receive.bin')).equals(content)).toBe(true)
  })

  it('fails, without hanging, when the file turns out shorter than planned', async () => {
    const target = await open(join(dir, 'short.bin'), 'w')
    await expect(
      receiveFileContent(memoryFile(Buffer.alloc(100)), target, 1000, { chunkSize: 64, slots: new Slots(4) }),
    ).rejects.toThrow(/shrank/)
    await target.close()
  })

  it('stops when aborted', async () => {
    const content = randomBytes(200_000)
    writeFileSync(join(dir, 'abort.bin'), content)
    const source = await open(join(dir, 'abort.bin'))
    const controller = new AbortController()
    controller.abort(new Error('stop'))
    await expect(
      sendFileContent(source, memoryFile(Buffer.alloc(0)), content.length, {
        chunkSize: 1000,
        slots: new Slots(4),
        signal: controller.signal,
      }),
    ).rejects.toThrow('stop')
    await source.close()
  })
})

describe('pod paths', () => {
  it('reads a leading colon as the pod, relative to /work', () => {
    expect(parsePathSpec(':/work/a.yaml')).toEqual({ side: 'remote', path: '/work/a.yaml', trailingSlash: false })
    expect(parsePathSpec(':studies/')).toEqual({ side: 'remote', path: '/work/studies', trailingSlash: true })
    expect(parsePathSpec(':')).toEqual({ side: 'remote', path: '/work', trailingSlash: false })
    expect(parsePathSpec('./a:b')).toEqual({ side: 'local', path: './a:b', trailingSlash: false })
    expect(resolveRemotePath('../etc/x')).toBe('/etc/x')
    expect(resolveRemotePath('/tmp//y/')).toBe('/tmp/y')
  })
})

describe('the progress line', () => {
  const state = {
    doneBytes: 100 * 1024 * 1024,
    totalBytes: 256 * 1024 * 1024,
    doneFiles: 3,
    totalFiles: 120,
    bytesPerSecond: 50 * 1024 * 1024,
    elapsedMs: 2000,
    current: 'studies/a/very/long/path/to/a/file/that/does/not/fit/big.csv',
  }

  it('shows percent, bar, amount, rate, ETA, files and the current name, within the width', () => {
    const line = renderProgressLine(state, 100, false)
    expect(line).toMatch(
      /^ 39% {2}\[#########>\.+\] {2}100\.0\/256\.0 MiB {2}50\.0 MiB\/s {2}ETA 0:03 {2}3\/120 {2}…\S+big\.csv$/,
    )
    expect(line.length).toBeLessThanOrEqual(99)
    expect(renderProgressLine(state, 40, false).length).toBeLessThanOrEqual(80)
  })

  it('colors only when asked', () => {
    expect(renderProgressLine(state, 100, true)).toContain('\u001b[36m')
    expect(renderProgressLine(state, 100, false)).not.toContain('\u001b')
  })

  it('formats sizes and durations', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(1536)).toBe('1.5 KiB')
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB')
    expect(formatDuration(7_000)).toBe('0:07')
    expect(formatDuration(3_723_000)).toBe('1:02:03')
  })
})

describe('the tar writer', () => {
  it('writes archives that GNU tar unpacks exactly: long and non-ASCII names, folders, links, modes, times', async () => {
    const source = join(dir, 'tar-source')
    mkdirSync(source)
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.yaml`
    const unicode = 'études/ça va.json'
    const files: Record<string, Buffer> = {
      'plain.yaml': Buffer.from('a: 1\n'),
      [long]: randomBytes(1000),
      [unicode]: Buffer.from('{}'),
      'empty.txt': Buffer.alloc(0),
      'block.bin': randomBytes(512),
    }
    const entries: TarEntry[] = [
      { name: 'd'.repeat(120), type: 'dir', mode: 0o755, mtime: 1_600_000_000 },
      { name: 'études', type: 'dir', mode: 0o700, mtime: 1_600_000_000 },
    ]
    for (const [name, content] of Object.entries(files)) {
      const path = join(source, name.replace(/\//g, '_'))
      writeFileSync(path, content)
      entries.push({ name, type: 'file', mode: 0o640, mtime: 1_500_000_000, source: path, size: content.length })
    }
    entries.push({ name: 'link', type: 'symlink', mode: 0o777, mtime: 1_500_000_000, target: `../${'t'.repeat(150)}` })
    const hashes = new Map<string, string>()
    const chunks: Buffer[] = []
    for await (const chunk of tarStream(entries, hashes)) chunks.push(chunk)
    const archive = Buffer.concat(chunks)
    expect(archive.length % 10240).toBe(0)

    const out = join(dir, 'tar-out')
    mkdirSync(out)
    execFileSync('tar', ['-x', '-f', '-', '-C', out], { input: archive })
    for (const [name, content] of Object.entries(files)) {
      expect(readFileSync(join(out, name)).equals(content)).toBe(true)
      expect(statSync(join(out, name)).mode & 0o777).toBe(0o640)
      expect(Math.floor(statSync(join(out, name)).mtimeMs / 1000)).toBe(1_500_000_000)
      expect(hashes.get(name)).toBe(sha256(content))
    }
    expect(readlinkSync(join(out, 'link'))).toBe(`../${'t'.repeat(150)}`)
  })

  it('counts the length of a pax record including its own digits', () => {
    expect(paxRecord('path', 'a')).toBe('9 path=a\n')
    const record = paxRecord('path', 'x'.repeat(95))
    expect(Buffer.byteLength(record)).toBe(Number(record.split(' ')[0]))
  })
})

describe('sha256sum output', () => {
  it('reads names, escaped ones included', () => {
    const hash = 'a'.repeat(64)
    const parsed = parseSha256sum(`${hash}  ./plain.yaml\n\\${hash}  ./back\\\\slash\\nnewline\n${hash} *./bin\n`)
    expect([...parsed.keys()]).toEqual(['plain.yaml', 'back\\slash\nnewline', 'bin'])
  })
})
