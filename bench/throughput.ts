/**
 * Transfer throughput through `akm-access forward`, through `kubectl port-forward`, and straight to the sandbox
 * pod's sshd (the floor), in one run, against the same sandbox, sshd and host key:
 *
 *   npm run build && npx tsx bench/throughput.ts [--mib 256] [--runs 3] [--max-runs 7] [--budget-s 240]
 *
 * Each transfer is one OpenSSH session: up is `cat > /dev/null` fed from a local file, down is `cat` of a file in the
 * pod's /work. Timing starts once the session is open (so the handshake, reported apart as "setup", is not counted)
 * and stops when ssh exits. Paths alternate in a rotating order, after one warm-up round; at least --runs rounds,
 * more while the budget lasts. Peak RSS and CPU time of the tunnel processes (akm-access forward, kubectl
 * port-forward) are sampled from /proc during the transfers. Prints a markdown table.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  createReadStream,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cliEnv, cliPath, runCli } from '../test/helpers/cli.js'
import { type Running, startCli, startProgram, strictHostKeyOptions } from '../test/helpers/openssh.js'
import { Sandbox } from '../test/sandbox/index.js'

const args = process.argv.slice(2)
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`)
  return at >= 0 ? Number(args[at + 1]) : fallback
}
const sizeMiB = option('mib', 256)
const minRuns = option('runs', 3)
const maxRuns = option('max-runs', 7)
const budgetMs = option('budget-s', 240) * 1000
const size = sizeMiB * 1024 * 1024

type PathName = 'akm-access forward' | 'akm-access proxy' | 'kubectl port-forward' | 'direct (floor)'
interface Path {
  name: PathName
  /** The local port ssh connects to (ignored with a ProxyCommand). */
  port: number
  sshOptions: string[]
  /** The tunnel process, for RSS and CPU (none for direct). */
  tunnelPid: () => number | undefined
  /** The ssh of the transfer under way. */
  current?: ChildProcess
}
interface Sample {
  up: number[]
  down: number[]
  setupMs: number[]
  peakRssKiB: number
  cpuSeconds: number
  bytes: number
}

function log(text: string): void {
  process.stderr.write(`${text}\n`)
}

function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w')
  try {
    const chunk = 8 * 1024 * 1024
    for (let written = 0; written < bytes; written += chunk)
      writeSync(fd, randomBytes(Math.min(chunk, bytes - written)))
  } finally {
    closeSync(fd)
  }
}

/** VmRSS (KiB) and utime+stime (seconds) of a process. */
function usage(pid: number): { rssKiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  return { rssKiB, cpuSeconds: ticks / 100 }
}

/**
 * Samples the tunnel process while `work` runs: peak RSS and CPU seconds spent. `pidOf` may name a different process
 * each time (a ProxyCommand lives as long as its ssh): one first seen during the work is counted from its start.
 */
async function measured<T>(pidOf: () => number | undefined, sample: Sample, work: () => Promise<T>): Promise<T> {
  const baseline = new Map<number, number>()
  const last = new Map<number, number>()
  let peak = 0
  const look = (initial: boolean) => {
    const pid = pidOf()
    if (pid === undefined) return
    try {
      const now = usage(pid)
      if (!baseline.has(pid)) baseline.set(pid, initial ? now.cpuSeconds : 0)
      last.set(pid, now.cpuSeconds)
      peak = Math.max(peak, now.rssKiB)
    } catch {
      // Gone between two looks.
    }
  }
  look(true)
  const timer = setInterval(() => look(false), 20)
  try {
    return await work()
  } finally {
    clearInterval(timer)
    look(false)
    sample.peakRssKiB = Math.max(sample.peakRssKiB, peak)
    for (const [pid, cpu] of last) sample.cpuSeconds += cpu - (baseline.get(pid) ?? cpu)
  }
}

function sshArgs(path: Path, base: string[], command: string): string[] {
  return ['-F', 'none', '-p', String(path.port), ...base, ...path.sshOptions, 'akamas@127.0.0.1', command]
}

/** The process ssh runs as its ProxyCommand (the shell execs it, so it is ssh's only child). */
function proxyOf(ssh: ChildProcess | undefined): number | undefined {
  if (ssh?.pid === undefined) return undefined
  try {
    const children = readFileSync(`/proc/${ssh.pid}/task/${ssh.pid}/children`, 'utf8').trim()
    return children ? Number(children.split(' ')[0]) : undefined
  } catch {
    return undefined
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on('close', (code) => resolve(code)))
}

/** Resolves once the remote command has said "ready" on stderr: the session is open. */
function sessionOpen(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
      if (text.includes('ready')) resolve()
    })
    child.once('close', (code) => reject(new Error(`ssh exited ${code} before the session opened: ${text}`)))
  })
}

/** Up: once the session is open, the clock runs while the file streams into `cat > /dev/null`. */
async function upload(path: Path, base: string[], file: string): Promise<{ seconds: number; setupMs: number }> {
  const started = performance.now()
  const child = spawn('ssh', sshArgs(path, base, 'echo ready >&2; exec cat > /dev/null'), {
    stdio: ['pipe', 'ignore', 'pipe'],
  })
  path.current = child
  await sessionOpen(child)
  const setupMs = performance.now() - started
  const clock = performance.now()
  createReadStream(file, { highWaterMark: 1024 * 1024 }).pipe(child.stdin!)
  const code = await exited(child)
  if (code !== 0) throw new Error(`upload through ${path.name}: ssh exited ${code}`)
  return { seconds: (performance.now() - clock) / 1000, setupMs }
}

/**
 * Down: the clock runs from "ready" (just before `cat` starts) to ssh's exit. ssh writes straight to /dev/null, so
 * that this process never touches the data.
 */
async function download(path: Path, base: string[], remoteFile: string): Promise<{ seconds: number; setupMs: number }> {
  const started = performance.now()
  const sink = openSync('/dev/null', 'w')
  const child = spawn('ssh', sshArgs(path, base, `echo ready >&2; exec cat ${remoteFile}`), {
    stdio: ['ignore', sink, 'pipe'],
  })
  closeSync(sink)
  path.current = child
  await sessionOpen(child)
  const setupMs = performance.now() - started
  const clock = performance.now()
  const code = await exited(child)
  if (code !== 0) throw new Error(`download through ${path.name}: ssh exited ${code}`)
  return { seconds: (performance.now() - clock) / 1000, setupMs }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const fmt = (value: number) => value.toFixed(1)

interface SandboxInfo {
  kubeconfigPath: string
  userKeyPath: string
  workDir: string
  podName: string
  sshPort: number
}

/**
 * The sandbox (API server, pod, sshd) runs in a process of its own, as a cluster would: in this one, its event loop
 * would share a thread with the measurements.
 */
async function serveSandbox(): Promise<void> {
  const sandbox = await Sandbox.start({ credentials: 'both' })
  const info: SandboxInfo = {
    kubeconfigPath: sandbox.kubeconfigPath,
    userKeyPath: sandbox.userKey.path,
    workDir: sandbox.workDir,
    podName: sandbox.currentPodName,
    sshPort: sandbox.runtime(sandbox.currentPodName).sshPort!,
  }
  process.stdout.write(`${JSON.stringify(info)}\n`)
  // Stops when the bench closes our stdin (or dies).
  process.stdin.resume()
  process.stdin.on('close', () => void sandbox.stop().then(() => process.exit(0)))
}

async function startSandbox(): Promise<{ info: SandboxInfo; process: Running }> {
  const child = startProgram(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--serve-sandbox'])
  const line = await child.waitFor(/^(\{.*\})\n/, { stream: 'stdout', timeoutMs: 60_000 })
  return { info: JSON.parse(line[1]!) as SandboxInfo, process: child }
}

async function main(): Promise<void> {
  const { info: sandbox, process: sandboxProcess } = await startSandbox()
  const processes: Running[] = []
  const dir = mkdtempSync(join(tmpdir(), 'akm-bench-'))
  try {
    const env = cliEnv(sandbox.kubeconfigPath)
    // For the ProxyCommand that ssh starts.
    process.env.KUBECONFIG = sandbox.kubeconfigPath
    const seeded = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    if (seeded.code !== 0) throw new Error(`akm-access ssh failed: ${seeded.stderr}`)
    const knownHosts = join(env.HOME!, '.config', 'akm-access', 'known_hosts')
    const alias = readFileSync(knownHosts, 'utf8').split(' ')[0]!
    const base = ['-i', sandbox.userKeyPath, ...strictHostKeyOptions(knownHosts, alias)]

    log(`writing ${sizeMiB} MiB of random data (local and in the pod's /work)…`)
    const local = join(dir, 'up.bin')
    writeRandomFile(local, size)
    writeRandomFile(join(sandbox.workDir, 'bench-down.bin'), size)

    const forward = startCli(['forward', '--port', '0'], env)
    processes.push(forward)
    const forwardPort = Number((await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
    const kubectl = startProgram('kubectl', ['port-forward', `pod/${sandbox.podName}`, '0:22'], {
      ...process.env,
      KUBECONFIG: sandbox.kubeconfigPath,
    })
    processes.push(kubectl)
    const kubectlPort = Number((await kubectl.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
    const paths: Path[] = [
      { name: 'akm-access forward', port: forwardPort, sshOptions: [], tunnelPid: () => forward.child.pid },
      {
        name: 'akm-access proxy',
        port: 22,
        // As ssh-config writes it (the kubeconfig comes from the environment here).
        sshOptions: ['-o', `ProxyCommand=${process.execPath} ${cliPath} proxy`],
        tunnelPid: () => proxyOf(proxyPath.current),
      },
      { name: 'kubectl port-forward', port: kubectlPort, sshOptions: [], tunnelPid: () => kubectl.child.pid },
      { name: 'direct (floor)', port: sandbox.sshPort, sshOptions: [], tunnelPid: () => undefined },
    ]
    const proxyPath = paths[1]!
    const samples = new Map<PathName, Sample>(
      paths.map((path) => [
        path.name,
        { up: [], down: [], setupMs: [], peakRssKiB: 0, cpuSeconds: 0, bytes: 0 } satisfies Sample,
      ]),
    )

    const round = async (index: number, record: boolean) => {
      // Rotate the order so that no path always runs first (or right after another).
      const order = paths.map((_, i) => paths[(i + index) % paths.length]!)
      for (const path of order) {
        const sample = samples.get(path.name)!
        const scratch: Sample = { up: [], down: [], setupMs: [], peakRssKiB: 0, cpuSeconds: 0, bytes: 0 }
        const target = record ? sample : scratch
        const up = await measured(path.tunnelPid, target, () => upload(path, base, local))
        const down = await measured(path.tunnelPid, target, () => download(path, base, '/work/bench-down.bin'))
        if (!record) continue
        sample.up.push(sizeMiB / up.seconds)
        sample.down.push(sizeMiB / down.seconds)
        sample.setupMs.push(up.setupMs, down.setupMs)
        sample.bytes += 2 * size
        log(
          `  run ${index}: ${path.name}: up ${fmt(sizeMiB / up.seconds)} MiB/s, down ${fmt(sizeMiB / down.seconds)} MiB/s`,
        )
      }
    }

    log('warm-up round…')
    await round(0, false)
    const started = Date.now()
    let runs = 0
    while (runs < minRuns || (runs < maxRuns && Date.now() - started < budgetMs / 2)) {
      await round(runs + 1, true)
      runs++
    }

    const direct = samples.get('direct (floor)')!
    const directUp = median(direct.up)
    const directDown = median(direct.down)
    // ssh -V writes to stderr.
    const sshVersion = spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr.trim()
    const lines = [
      `Throughput of ${sizeMiB} MiB per transfer, ${runs} runs per path after a warm-up (median, min–max MiB/s);`,
      `${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${sshVersion || 'OpenSSH'}, ` +
        'default cipher; sandbox API server, pod and sshd in a separate process on the same machine.',
      '',
      '| path | up MiB/s | down MiB/s | up vs direct | down vs direct | session setup (ms, median) | tunnel peak RSS | tunnel CPU per GiB moved |',
      '|---|---|---|---|---|---|---|---|',
    ]
    for (const path of paths) {
      const sample = samples.get(path.name)!
      const range = (values: number[]) =>
        `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`
      const gib = sample.bytes / 1024 ** 3
      lines.push(
        `| ${path.name} | ${range(sample.up)} | ${range(sample.down)} | ` +
          `${(median(sample.up) / directUp).toFixed(2)}× | ${(median(sample.down) / directDown).toFixed(2)}× | ` +
          `${median(sample.setupMs).toFixed(0)} | ` +
          `${sample.peakRssKiB === 0 ? '—' : `${(sample.peakRssKiB / 1024).toFixed(0)} MiB`} | ` +
          `${sample.peakRssKiB === 0 ? '—' : `${(sample.cpuSeconds / gib).toFixed(2)} s`} |`,
      )
    }
    process.stdout.write(`${lines.join('\n')}\n`)
    const jsonOut = args.indexOf('--json-out')
    if (jsonOut >= 0) {
      // For npm run bench (bench/run.ts), which folds these figures into bench/results.md.
      const summary = Object.fromEntries(
        paths.map((path) => {
          const sample = samples.get(path.name)!
          return [path.name, { up: median(sample.up), down: median(sample.down), peakRssMiB: sample.peakRssKiB / 1024 }]
        }),
      )
      writeFileSync(
        args[jsonOut + 1]!,
        JSON.stringify({ sizeMiB, runs, table: lines.join('\n'), paths: summary }, null, 2),
      )
    }
  } finally {
    for (const running of processes) running.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
    sandboxProcess.child.stdin?.end()
    await sandboxProcess.exited
  }
}

if (process.argv.includes('--serve-sandbox')) await serveSandbox()
else await main()
