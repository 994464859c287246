/**
 * `npx tsx bench/transfer.ts [MiB]`: how fast files move to and from the management pod, on this machine's sandbox,
 * at loopback and behind a 50 ms round-trip proxy in front of the API server.
 *
 *  1. SFTP strategies side by side (one connection, in a child process so that the sandbox's API server, which
 *     runs in this process, does not share an event loop with the client): ssh2's fastPut/fastGet, its read/write
 *     streams, and akm-access's pipeline (src/transfer/pipeline.ts) at several request sizes and depths.
 *  2. The commands people run: `akm-access cp` up and down, against `scp` through `kubectl port-forward`.
 *
 * Prints a Markdown table of MiB/s. Not part of `npm test`: absolute numbers on a shared machine are noise.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)
const mib = 1024 * 1024

if (process.argv[2] === 'client') {
  await client(process.argv[3]!, process.argv[4]!, process.argv[5]!, Number(process.argv[6]))
} else {
  await main(Number(process.argv[2] ?? 256))
}

/** Runs in a child: one SSH connection, every SFTP strategy in turn. Prints one JSON line per measurement. */
async function client(kubeconfig: string, home: string, localFile: string, far: number): Promise<void> {
  const { createDeps } = await import('../src/deps.js')
  const { processIo } = await import('../src/terminal/io.js')
  const { resolveSshAccess, connectToPod } = await import('../src/actions/ssh-access.js')
  const { openSftp } = await import('../src/ssh/sftp.js')
  const { sendFileContent, receiveFileContent, Slots } = await import('../src/transfer/pipeline.js')
  const io = { ...processIo(), env: { ...process.env, HOME: home } }
  const deps = createDeps(io, { kubeconfig })
  const options = {
    target: {},
    credentials: {},
    remotePort: 22,
    user: 'akamas',
    acceptNewHostKey: true,
    knownHostsFile: join(home, 'known_hosts'),
    passphraseFile: undefined,
  }
  const { location, credentials } = await resolveSshAccess(options, deps)
  const connection = await connectToPod(location, credentials, options, deps)
  const sftp = await openSftp(connection)
  const raw = await connection.sftp()
  const size = (await stat(localFile)).size
  const expected = createHash('sha256').update(readFileSync(localFile)).digest('hex')
  const remote = '/work/bench.bin'
  const back = `${localFile}.back`
  const report = (strategy: string, direction: string, ms: number) =>
    process.stdout.write(`${JSON.stringify({ strategy, direction, far, mibPerS: size / mib / (ms / 1000) })}\n`)
  const check = () => {
    const got = createHash('sha256').update(readFileSync(back)).digest('hex')
    if (got !== expected) throw new Error('downloaded bytes differ')
    rmSync(back)
  }
  const timed = async (run: () => Promise<unknown>) => {
    const start = performance.now()
    await run()
    return performance.now() - start
  }
  const cb = (resolve: () => void, reject: (e: Error) => void) => (error?: Error | null) =>
    error ? reject(error) : resolve()

  const strategies: { name: string; up: () => Promise<unknown>; down: () => Promise<unknown> }[] = [
    {
      name: 'ssh2 fastPut/fastGet (64 × 32 KiB)',
      up: () => new Promise<void>((resolve, reject) => raw.fastPut(localFile, remote, {}, cb(resolve, reject))),
      down: () => new Promise<void>((resolve, reject) => raw.fastGet(remote, back, {}, cb(resolve, reject))),
    },
    {
      name: 'ssh2 createWriteStream/createReadStream',
      up: () => pipeline(createReadStream(localFile), raw.createWriteStream(remote)),
      down: () => pipeline(raw.createReadStream(remote), createWriteStream(back)),
    },
  ]
  for (const [chunk, depth] of [
    [32 * 1024, 64],
    [sftp.maxWriteLength, 8],
    [sftp.maxWriteLength, 16],
    [sftp.maxWriteLength, 32],
    [sftp.maxWriteLength, 64],
  ] as const) {
    strategies.push({
      name: `akm-access pipeline (${depth} × ${Math.round(chunk / 1024)} KiB)`,
      async up() {
        const source = await open(localFile)
        const target = await sftp.open(remote, 'write')
        await sendFileContent(source, target, size, { chunkSize: chunk, slots: new Slots(depth) })
        await Promise.all([source.close(), target.close()])
      },
      async down() {
        const source = await sftp.open(remote, 'read')
        const target = await open(back, 'w')
        await receiveFileContent(source, target, size, {
          chunkSize: Math.min(chunk, sftp.maxReadLength),
          slots: new Slots(depth),
        })
        await Promise.all([source.close(), target.close()])
      },
    })
  }
  for (const strategy of strategies) {
    // Streams keep one request in flight: at 50 ms per round trip they would take minutes.
    if (far && strategy.name.includes('Stream') && size > 16 * mib) continue
    report(strategy.name, 'up', await timed(strategy.up))
    report(strategy.name, 'down', await timed(strategy.down))
    check()
  }
  connection.end()
  await deps.close()
}

async function main(sizeMiB: number): Promise<void> {
  const { Sandbox } = await import('../test/sandbox/index.js')
  const { startLatencyProxy } = await import('./lib/latency-proxy.js')
  const { cliEnv, cliPath } = await import('../test/helpers/cli.js')
  const sandbox = await Sandbox.start()
  const work = mkdtempSync(join(tmpdir(), 'akm-bench-transfer-'))
  const children = new Set<ChildProcess>()
  try {
    const proxy = await startLatencyProxy(Number(new URL(sandbox.url).port), 50)
    const farKubeconfig = sandbox.writeKubeconfig({
      server: `https://127.0.0.1:${proxy.port}`,
      path: join(work, 'far'),
    })
    const file = join(work, 'payload.bin')
    const handle = await open(file, 'w')
    for (let i = 0; i < sizeMiB; i++) await handle.write(randomBytes(mib))
    await handle.close()

    const rows: { strategy: string; direction: string; far: number; mibPerS: number }[] = []
    for (const [kubeconfig, far] of [
      [sandbox.kubeconfigPath, 0],
      [farKubeconfig, 1],
    ] as const) {
      process.stderr.write(`bench: SFTP strategies (${far ? '50 ms RTT' : 'loopback'})…\n`)
      const home = mkdtempSync(join(work, 'home-'))
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', import.meta.filename, 'client', kubeconfig, home, file, String(far)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      )
      children.add(child)
      let out = ''
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk
      })
      const code = await new Promise((resolve) => child.once('exit', resolve))
      if (code !== 0) throw new Error(`the bench client failed (${code})`)
      rows.push(
        ...out
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line)),
      )
    }

    // The commands people type.
    const cliRows: [string, string, number][] = []
    if (!process.env.BENCH_STRATEGIES_ONLY) await commands(cliRows, file)
    printTable(rows, cliRows, sizeMiB)
    await proxy.close()
  } finally {
    for (const child of children) child.kill()
    rmSync(work, { recursive: true, force: true })
    await sandbox.stop()
  }

  async function commands(cliRows: [string, string, number][], file: string): Promise<void> {
    process.stderr.write('bench: akm-access cp and scp through kubectl port-forward…\n')
    const env = cliEnv(sandbox.kubeconfigPath)
    const akm = (args: string[]) => execFileAsync(process.execPath, [cliPath, ...args], { env })
    const time = async (run: () => Promise<unknown>) => {
      const start = performance.now()
      await run()
      return performance.now() - start
    }
    const down = join(work, 'down.bin')
    await akm(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'])
    cliRows.push(['akm-access cp', 'up', await time(() => akm(['cp', file, ':/work/cp.bin']))])
    cliRows.push(['akm-access cp', 'down', await time(() => akm(['cp', ':/work/cp.bin', down]))])
    rmSync(down)

    const pf = spawn(
      'kubectl',
      ['--kubeconfig', sandbox.kubeconfigPath, 'port-forward', `pod/${sandbox.currentPodName}`, ':22'],
      { env: { PATH: process.env.PATH ?? '', HOME: work, NO_PROXY: '*' }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    children.add(pf)
    const port = await new Promise<number>((resolve, reject) => {
      let text = ''
      pf.stdout!.on('data', (chunk: Buffer) => {
        text += chunk
        const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(text)
        if (match) resolve(Number(match[1]))
      })
      pf.once('exit', (code) => reject(new Error(`kubectl port-forward exited (${code})`)))
    })
    const knownHosts = join(work, 'known_hosts')
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${sandbox.hostKey.publicKey}\n`)
    const scp = (from: string, to: string) =>
      execFileAsync('scp', [
        '-q',
        '-P',
        String(port),
        '-i',
        sandbox.userKey.path,
        '-o',
        `UserKnownHostsFile=${knownHosts}`,
        '-o',
        'BatchMode=yes',
        from,
        to,
      ])
    cliRows.push(['scp via kubectl port-forward', 'up', await time(() => scp(file, 'akamas@127.0.0.1:/work/scp.bin'))])
    cliRows.push([
      'scp via kubectl port-forward',
      'down',
      await time(() => scp('akamas@127.0.0.1:/work/scp.bin', down)),
    ])
    pf.kill()
  }
}

function printTable(
  rows: { strategy: string; direction: string; far: number; mibPerS: number }[],
  cliRows: [string, string, number][],
  sizeMiB: number,
): void {
  const table = ['| strategy | where | up MiB/s | down MiB/s |', '|---|---|---:|---:|']
  for (const name of [...new Set(rows.map((row) => row.strategy))]) {
    for (const far of [0, 1]) {
      const get = (direction: string) =>
        rows.find((r) => r.strategy === name && r.far === far && r.direction === direction)?.mibPerS
      const up = get('up')
      if (up === undefined) continue
      table.push(`| ${name} | ${far ? '50 ms RTT' : 'loopback'} | ${up.toFixed(1)} | ${get('down')!.toFixed(1)} |`)
    }
  }
  table.push('', `| command (${sizeMiB} MiB, whole process) | up MiB/s | down MiB/s |`, '|---|---:|---:|')
  for (const name of [...new Set(cliRows.map((row) => row[0]))]) {
    const speed = (direction: string) => sizeMiB / (cliRows.find((r) => r[0] === name && r[1] === direction)![2] / 1000)
    table.push(`| ${name} | ${speed('up').toFixed(1)} | ${speed('down').toFixed(1)} |`)
  }
  process.stdout.write(`${table.join('\n')}\n`)
}
