/**
 * The management pod, emulated with real processes: a private mount + UTS namespace per pod, in which
 *   - the pod's workDir is bind-mounted on /work (the login folder: HOME and working directory),
 *   - copies of /etc/passwd, /etc/shadow and /etc/group that add the user `akamas` are bind-mounted over the
 *     originals, so the machine's own accounts never change,
 *   - empty copies of the login records (utmp, wtmp, btmp, lastlog) hide the machine's, so sshd logins into the pod
 *     are not written into the machine's records,
 *   - the hostname is the pod's name,
 *   - a stand-in for the Akamas CLI is on PATH as `akamas` (AKAMAS_STANDIN below; an overlay puts it into
 *     /usr/local/bin, where the real image has it, without changing the machine's folder).
 * A "namespace holder" process (`unshare … sh`, see HOLDER_SCRIPT) keeps the namespace alive; every pod process
 * enters it with `nsenter`, with a clean environment, as `akamas`, in /work. Needs root (unshare, nsenter, mount).
 *
 * What the machine sees (outside the namespace):
 *   - workDir (and everything in it) is chowned to the pod user's uid/gid, which have no name on the machine;
 *   - /work and /run/sshd are created if missing (mount point; sshd's privilege separation folder) and left in
 *     place, since other pods (other test files run in parallel) may be using them;
 *   - stateDir holds the pod's private files; destroy() removes them all but sshd.log (kept for debugging).
 */
import { type ChildProcess, execFile, type StdioOptions, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import { createConnection, type Socket } from 'node:net'
import { constants as osConstants } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { PodExecOptions, PodProcess, PodRuntime, PodRuntimeOptions } from './contracts.js'
import { startPodProcess } from './pod-process.js'
import {
  assertSshdInstalled,
  ensurePrivsepDir,
  type RunningSshd,
  type SshdPaths,
  sshdPaths,
  startSshd,
} from './sshd.js'

const execFileAsync = promisify(execFile)

/** The pod's user, as in the real management pod's image. */
export const POD_USER_NAME = 'akamas'
export const POD_HOME = '/work'
/** Preferred uid and gid of the pod user; the next free id is taken if the machine already uses it. */
const PREFERRED_POD_ID = 23456
/** Debian's default PATH in container images: what containerd gives exec'd processes. */
export const POD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

const ACCOUNT_FILES = ['/etc/passwd', '/etc/shadow', '/etc/group'] as const
const LOGIN_RECORD_FILES = ['/var/run/utmp', '/var/log/wtmp', '/var/log/btmp', '/var/log/lastlog'] as const
const HOLDER_READY_LINE = 'namespace-ready'
const KILL_ROUNDS = 50
const KILL_ROUND_PAUSE_MS = 20

export interface PodUser {
  name: string
  uid: number
  gid: number
}

/** Starts a pod: its namespace, and its sshd unless `startSshd: false`. */
export async function createPodRuntime(options: PodRuntimeOptions): Promise<NamespacedPodRuntime> {
  return NamespacedPodRuntime.start(options)
}

export class NamespacedPodRuntime implements PodRuntime {
  private sshd: RunningSshd | undefined
  private sshdStarting: Promise<void> | undefined
  /**
   * The exec'd processes. destroy() finds the pod's processes by their mount namespace, but a process that is still
   * in nsenter has not joined it yet; so these are also killed by their handle.
   */
  private readonly execd = new Set<PodProcess>()
  private destroying: Promise<void> | undefined
  private readonly sshdFiles: SshdPaths

  private constructor(
    private readonly options: PodRuntimeOptions,
    readonly user: PodUser,
    private readonly holder: ChildProcess,
    /** The pod's mount namespace (`mnt:[inode]`): how its processes are found in /proc, wherever they came from. */
    private readonly mountNamespace: string,
  ) {
    this.sshdFiles = sshdPaths(options.stateDir)
  }

  static async start(options: PodRuntimeOptions): Promise<NamespacedPodRuntime> {
    assertRoot()
    if (options.sshd.password?.includes('\n')) {
      throw new Error('the pod password cannot contain a newline')
    }
    await mkdir(options.stateDir, { recursive: true, mode: 0o700 })
    await mkdir(options.workDir, { recursive: true })
    await mkdir(POD_HOME, { recursive: true })
    const user = await writeAccountFiles(options.stateDir, options.sshd.password)
    await execFileAsync('chown', ['-R', `${user.uid}:${user.gid}`, options.workDir])
    const binds = [
      [options.workDir, POD_HOME],
      ...ACCOUNT_FILES.map((file) => [accountCopy(options.stateDir, file), file]),
    ]
    binds.push(...(await prepareLoginRecordCopies(options.stateDir)))
    const standinDir = await writeAkamasStandin(options.stateDir)
    const holder = await startNamespaceHolder(options.name, binds, standinDir).catch(async (error: unknown) => {
      await removeStateFiles(options.stateDir, sshdPaths(options.stateDir))
      throw error
    })
    const pod = new NamespacedPodRuntime(options, user, holder, await readlink(`/proc/${holder.pid}/ns/mnt`))
    try {
      if (options.startSshd !== false) await pod.startSshd()
    } catch (error) {
      await pod.destroy()
      throw error
    }
    return pod
  }

  get name(): string {
    return this.options.name
  }

  get sshPort(): number | undefined {
    return this.sshd?.port
  }

  get sshAddress(): string | undefined {
    return this.sshd?.address
  }

  exec(argv: string[], options: PodExecOptions): PodProcess {
    this.assertAlive()
    if (argv.length === 0) throw new Error('exec needs a command')
    const env = podEnvironment(this.name, options.tty)
    const command = [...this.nsenter(this.user), 'env', '-i', '-C', POD_HOME, ...env, ...argv]
    const started = startPodProcess(command, options)
    this.execd.add(started)
    const forget = () => this.execd.delete(started)
    started.exited.then(forget, forget)
    return started
  }

  async dial(port: number): Promise<Socket> {
    this.assertAlive()
    const hostPort = port === 22 ? this.sshd?.port : this.options.extraPorts?.[port]
    if (hostPort === undefined) throw connectionRefused(port)
    const host = port === 22 ? (this.sshd?.address ?? '127.0.0.1') : '127.0.0.1'
    const socket = createConnection({ host, port: hostPort })
    await once(socket, 'connect')
    return socket
  }

  /** Starts sshd (if it isn't running) and resolves once it accepts connections. */
  startSshd(): Promise<void> {
    this.assertAlive()
    if (this.sshd) return Promise.resolve()
    // Callers that ask at the same time share one start.
    this.sshdStarting ??= this.launchSshd().finally(() => {
      this.sshdStarting = undefined
    })
    return this.sshdStarting
  }

  private async launchSshd(): Promise<void> {
    await assertSshdInstalled()
    await ensurePrivsepDir()
    const { sshd } = this.options
    const started = await startSshd({
      hostKeyPath: this.options.hostKeyPath,
      paths: this.sshdFiles,
      user: this.user.name,
      passwordAuthentication: sshd.passwordAuthentication,
      authorizedKeys: sshd.authorizedKeys,
      spawnAsRoot: (argv, stdio) => this.spawnAsRoot(argv, stdio),
      ...(this.options.sshListen
        ? { pickPort: async () => this.options.sshListen!.port, pickAddress: this.options.sshListen.pickAddress }
        : {}),
    })
    this.sshd = started
    started.process.once('exit', () => {
      if (this.sshd === started) this.sshd = undefined
    })
  }

  /** Stops sshd and the sessions it started (their clients see the connection drop). */
  async stopSshd(): Promise<void> {
    await this.sshdStarting?.catch(() => {})
    const running = this.sshd
    if (!running) return
    this.sshd = undefined
    const exited = running.process.exitCode === null ? once(running.process, 'exit') : Promise.resolve()
    // Freeze the tree first: a killed parent's children move to init and could no longer be found.
    const tree = await freezeProcessTree(running.process.pid!)
    await killAndWait(tree)
    await exited
    await rm(this.sshdFiles.pid, { force: true })
  }

  /** Kills every process in the pod's namespace (exec'd ones, sshd, sessions, the holder); removes its state. */
  destroy(): Promise<void> {
    this.destroying ??= this.tearDown()
    return this.destroying
  }

  private async tearDown(): Promise<void> {
    this.sshd?.process.kill('SIGKILL')
    this.sshd = undefined
    for (const started of this.execd) started.kill('SIGKILL')
    const holderExited = this.holder.exitCode === null ? once(this.holder, 'exit') : Promise.resolve()
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const members = await this.processesInNamespace()
      if (members.length === 0) break
      for (const pid of members) signal(pid, 'SIGKILL')
      await sleep(KILL_ROUND_PAUSE_MS)
    }
    const survivors = await this.processesInNamespace()
    if (survivors.length > 0) throw new Error(`pod ${this.name}: processes survived destroy: ${survivors.join(' ')}`)
    await holderExited
    await removeStateFiles(this.options.stateDir, this.sshdFiles)
  }

  /** The live processes in the pod's mount namespace. Zombies have no namespace left, so they don't count. */
  async processesInNamespace(): Promise<number[]> {
    const members: number[] = []
    for (const pid of await listPids()) {
      const namespace = await readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined)
      if (namespace === this.mountNamespace) members.push(pid)
    }
    return members
  }

  private spawnAsRoot(argv: string[], stdio: StdioOptions): ChildProcess {
    this.assertAlive()
    const [file, ...args] = [...this.nsenter(), 'env', '-i', ...podEnvironment(this.name, false), ...argv]
    return spawn(file!, args, { stdio, env: {} })
  }

  /** The command prefix that enters the pod's namespaces, as `user` if given (else root). */
  private nsenter(user?: PodUser): string[] {
    const credentials = user ? ['-S', `${user.uid}`, '-G', `${user.gid}`] : []
    return ['nsenter', '-t', `${this.holder.pid}`, '-m', '-u', ...credentials, '--']
  }

  private assertAlive(): void {
    if (this.destroying) throw new Error(`pod ${this.name} is destroyed`)
  }
}

function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the pod sandbox needs root: it runs each pod in its own mount and UTS namespace (unshare, nsenter, mount)',
    )
  }
}

/** What containerd gives an exec'd process: the image's PATH, HOME, HOSTNAME, and TERM only with a TTY. */
function podEnvironment(podName: string, tty: boolean): string[] {
  const env = [`PATH=${POD_PATH}`, `HOME=${POD_HOME}`, `HOSTNAME=${podName}`]
  if (tty) env.push('TERM=xterm')
  return env
}

function connectionRefused(port: number): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`connect ECONNREFUSED 127.0.0.1:${port}`)
  return Object.assign(error, { code: 'ECONNREFUSED', errno: -osConstants.errno.ECONNREFUSED, syscall: 'connect' })
}

// ---- The namespace holder ----

/**
 * The holder's script (`sh -c`): $1 is the hostname, then pairs of bind mounts (source, target). Once the namespace
 * is set up, it waits on its stdin, a pipe from this node process. destroy() kills it with the rest of the pod; if
 * node exits or crashes without destroy(), the pipe closes and the holder takes the pod down itself (every process in
 * its mount namespace but itself and its parent, unshare), so no pod process outlives the sandbox.
 */
const HOLDER_SCRIPT = `set -e
hostname "$1"; shift
while [ $# -gt 0 ]; do mount --bind "$1" "$2"; shift 2; done
if [ -n "$AKAMAS_STANDIN_DIR" ]; then
  mount -t overlay akamas-standin -o "lowerdir=$AKAMAS_STANDIN_DIR:/usr/local/bin" /usr/local/bin 2>/dev/null ||
    mount --bind "$AKAMAS_STANDIN_DIR" /usr/local/sbin
fi
cd ${POD_HOME}
echo ${HOLDER_READY_LINE}
set +e
read -r _
namespace=$(readlink /proc/$$/ns/mnt)
for pass in 1 2 3 4 5; do
  for dir in /proc/[0-9]*; do
    pid=\${dir#/proc/}
    if [ "$pid" != $$ ] && [ "$pid" != "$PPID" ] && [ "$(readlink "$dir/ns/mnt" 2>/dev/null)" = "$namespace" ]; then
      kill -9 "$pid" 2>/dev/null
    fi
  done
  sleep 0.05
done
`

/**
 * Starts the process that owns the pod's namespaces (see HOLDER_SCRIPT). `--fork` makes the script a child of
 * unshare, and `--kill-child` ends it if unshare is killed. `standinDir` holds the programs that the pod has on top
 * of the machine's: overlaid on /usr/local/bin (or, where overlayfs is missing, bound on the empty /usr/local/sbin,
 * first on the exec PATH).
 */
async function startNamespaceHolder(hostname: string, binds: string[][], standinDir: string): Promise<ChildProcess> {
  const args = ['--mount', '--uts', '--propagation', 'private', '--fork', '--kill-child']
  const holder = spawn('unshare', [...args, 'sh', '-c', HOLDER_SCRIPT, 'holder', hostname, ...binds.flat()], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: POD_PATH, AKAMAS_STANDIN_DIR: standinDir },
  })
  let stderr = ''
  holder.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const ready = new Promise<void>((resolve, reject) => {
    let stdout = ''
    holder.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.includes(HOLDER_READY_LINE)) resolve()
    })
    holder.once('error', reject)
    holder.once('exit', (code, signalName) =>
      reject(new Error(`the pod's namespace holder exited (${code ?? signalName}): ${stderr.trim()}`)),
    )
  })
  await ready
  // Nothing more comes on stdout. stdin stays open: its closing is the holder's signal that node has gone.
  holder.stdout!.destroy()
  return holder
}

// ---- Accounts ----

function accountCopy(stateDir: string, file: (typeof ACCOUNT_FILES)[number]): string {
  return join(stateDir, file.slice('/etc/'.length))
}

/**
 * Writes the pod's passwd, shadow and group: the machine's, plus the pod user (home /work, bash), plus sshd's
 * privilege separation user if the machine lacks it. The password, if any, is hashed with `openssl passwd -6`.
 */
async function writeAccountFiles(stateDir: string, password: string | undefined): Promise<PodUser> {
  const [passwd, shadow, group] = await Promise.all([
    readAccountLines('/etc/passwd'),
    readAccountLines('/etc/shadow'),
    readAccountLines('/etc/group'),
  ])
  const withoutPodUser = (lines: string[]) => lines.filter((line) => !line.startsWith(`${POD_USER_NAME}:`))
  const basePasswd = withoutPodUser(passwd)
  const baseGroup = withoutPodUser(group)
  const id = firstFreeId(basePasswd, baseGroup)
  const user: PodUser = { name: POD_USER_NAME, uid: id, gid: id }
  const passwordField = password === undefined ? '*' : await hashPassword(password)
  const daysSinceEpoch = Math.floor(Date.now() / 86_400_000)
  const podPasswd = [...basePasswd, `${POD_USER_NAME}:x:${id}:${id}:Akamas:${POD_HOME}:/bin/bash`]
  const podShadow = [...withoutPodUser(shadow), `${POD_USER_NAME}:${passwordField}:${daysSinceEpoch}:0:99999:7:::`]
  if (!basePasswd.some((line) => line.startsWith('sshd:'))) {
    podPasswd.push(`sshd:x:${firstFreeId(podPasswd, baseGroup)}:65534::/run/sshd:/usr/sbin/nologin`)
  }
  const toText = (lines: string[]) => `${lines.join('\n')}\n`
  await writeFile(accountCopy(stateDir, '/etc/passwd'), toText(podPasswd), { mode: 0o644 })
  await writeFile(accountCopy(stateDir, '/etc/group'), toText([...baseGroup, `${POD_USER_NAME}:x:${id}:`]), {
    mode: 0o644,
  })
  await writeFile(accountCopy(stateDir, '/etc/shadow'), toText(podShadow), { mode: 0o600 })
  return user
}

async function readAccountLines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8')
  return text.split('\n').filter((line) => line.trim() !== '')
}

/** The first id from PREFERRED_POD_ID on that is neither a uid in passwd nor a gid in group (both 3rd field). */
function firstFreeId(passwd: string[], group: string[]): number {
  const used = new Set([...passwd, ...group].map((line) => Number(line.split(':')[2])))
  let id = PREFERRED_POD_ID
  while (used.has(id)) id++
  return id
}

/** SHA-512 crypt, as `chpasswd` would store it. The password goes through stdin, never argv. */
async function hashPassword(password: string): Promise<string> {
  const openssl = spawn('openssl', ['passwd', '-6', '-stdin'], { stdio: ['pipe', 'pipe', 'pipe'] })
  openssl.stdin.end(`${password}\n`)
  let hash = ''
  let stderr = ''
  openssl.stdout.on('data', (chunk: Buffer) => {
    hash += chunk.toString()
  })
  openssl.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const [code] = await once(openssl, 'close')
  if (code !== 0 || !hash.startsWith('$6$')) throw new Error(`openssl passwd failed (${code}): ${stderr.trim()}`)
  return hash.trim()
}

/** Empty login records for the pod, one per record file the machine has (a bind mount needs its target). */
async function prepareLoginRecordCopies(stateDir: string): Promise<string[][]> {
  const binds: string[][] = []
  await mkdir(join(stateDir, 'login-records'), { recursive: true })
  for (const file of LOGIN_RECORD_FILES) {
    const exists = await stat(file).then(
      (info) => info.isFile(),
      () => false,
    )
    if (!exists) continue
    const copy = join(stateDir, 'login-records', file.split('/').pop()!)
    await writeFile(copy, '', { mode: 0o600 })
    binds.push([copy, file])
  }
  return binds
}

// ---- The Akamas CLI stand-in ----

/** What the stand-in prints first on stderr, before a JSON record of its invocation. */
export const AKAMAS_STANDIN_MARK = 'akamas-standin:'
/** The password the stand-in's `akamas login` accepts. */
export const AKAMAS_STANDIN_PASSWORD = 'akamas-pw'

/**
 * A stand-in for the Akamas CLI (run with the machine's node). First it reports what it was given, on stderr, as
 * `akamas-standin: {"argv":[…],"cwd":"/work","tty":false,"files":{…}}`, where `files` maps every argument that names
 * an existing path (also the value of `--opt=PATH`) to its SHA-256 — a folder to an object of the files inside it,
 * by relative path — so that tests see what was uploaded even after it is removed. Then it acts on its first
 * argument:
 *   login    asks `Password:` on the terminal without echo (none: exit 3); `Logged in.` for AKAMAS_STANDIN_PASSWORD,
 *            else `Login failed.` and exit 1
 *   exit N   exits with status N
 *   cat      copies stdin to stdout
 *   echo     prints each further argument as [ARG] on its own line
 *   …        anything else prints `ok`
 */
export const AKAMAS_STANDIN = `#!/usr/bin/env node
'use strict'
const fs = require('node:fs')
const crypto = require('node:crypto')
const path = require('node:path')
const argv = process.argv.slice(2)
const hash = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
function describe(target) {
  const info = fs.statSync(target, { throwIfNoEntry: false })
  if (!info) return undefined
  if (info.isFile()) return hash(target)
  if (!info.isDirectory()) return undefined
  const files = {}
  for (const name of fs.readdirSync(target, { recursive: true })) {
    const full = path.join(target, name)
    if (fs.statSync(full).isFile()) files[name] = hash(full)
  }
  return files
}
const files = {}
for (const arg of argv) {
  for (const candidate of [arg, arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined]) {
    const found = candidate ? describe(candidate) : undefined
    if (found !== undefined) files[candidate] = found
  }
}
const record = { argv, cwd: process.cwd(), tty: Boolean(process.stdin.isTTY), files }
process.stderr.write('${AKAMAS_STANDIN_MARK} ' + JSON.stringify(record) + '\\n')
const [command, ...rest] = argv
if (command === 'exit') process.exit(Number(rest[0] ?? 0))
else if (command === 'cat') process.stdin.pipe(process.stdout)
else if (command === 'echo') process.stdout.write(rest.map((arg) => '[' + arg + ']\\n').join(''))
else if (command === 'login') {
  if (!process.stdin.isTTY) {
    process.stderr.write('akamas login: a terminal is needed to ask for the password\\n')
    process.exit(3)
  }
  // Echo off before the prompt shows: a person (or a test) may type as soon as they see it.
  process.stdin.setRawMode(true)
  process.stdout.write('Password: ')
  let typed = ''
  process.stdin.on('data', (chunk) => {
    for (const char of chunk.toString('utf8')) {
      if (char === '\\u0003') process.exit(130)
      if (char !== '\\r' && char !== '\\n') {
        typed += char
        continue
      }
      process.stdin.setRawMode(false)
      const ok = typed === '${AKAMAS_STANDIN_PASSWORD}'
      process.stdout.write(ok ? '\\r\\nLogged in.\\r\\n' : '\\r\\nLogin failed.\\r\\n')
      process.exit(ok ? 0 : 1)
    }
  })
} else process.stdout.write('ok\\n')
`

/** Writes the stand-in into a folder of its own under stateDir (readable by the pod user) and returns the folder. */
async function writeAkamasStandin(stateDir: string): Promise<string> {
  const dir = join(stateDir, 'standin-bin')
  await mkdir(dir, { recursive: true, mode: 0o755 })
  await writeFile(join(dir, 'akamas'), AKAMAS_STANDIN, { mode: 0o755 })
  return dir
}

async function removeStateFiles(stateDir: string, sshd: SshdPaths): Promise<void> {
  const files = [
    ...ACCOUNT_FILES.map((file) => accountCopy(stateDir, file)),
    sshd.config,
    sshd.authorizedKeys,
    sshd.pid,
  ]
  await Promise.all(files.map((file) => rm(file, { force: true })))
  await rm(join(stateDir, 'login-records'), { recursive: true, force: true })
  await rm(join(stateDir, 'standin-bin'), { recursive: true, force: true })
}

// ---- Processes ----

async function listPids(): Promise<number[]> {
  const entries = await readdir('/proc')
  return entries.filter((entry) => /^\d+$/.test(entry)).map(Number)
}

/** Parent pid from /proc/<pid>/stat (the command name in parentheses may hold spaces, so split after it). */
async function parentPid(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ')
  return fields?.[1] === undefined ? undefined : Number(fields[1])
}

async function childrenByParent(): Promise<Map<number, number[]>> {
  const children = new Map<number, number[]>()
  for (const pid of await listPids()) {
    const parent = await parentPid(pid)
    if (parent === undefined) continue
    children.set(parent, [...(children.get(parent) ?? []), pid])
  }
  return children
}

/** Stops `root` and all its descendants (SIGSTOP) until no new one appears, and returns them all. */
async function freezeProcessTree(root: number): Promise<number[]> {
  const frozen = new Set<number>()
  for (;;) {
    const children = await childrenByParent()
    const tree = [root]
    for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []))
    const fresh = tree.filter((pid) => !frozen.has(pid))
    if (fresh.length === 0) return [...frozen]
    for (const pid of fresh) {
      signal(pid, 'SIGSTOP')
      frozen.add(pid)
    }
  }
}

/** SIGKILLs the processes and waits until each is gone or a zombie (dead, waiting for its parent to reap it). */
async function killAndWait(pids: number[]): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGKILL')
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const states = await Promise.all(pids.map((pid) => processState(pid)))
    if (states.every((state) => state === undefined || state === 'Z')) return
    await sleep(KILL_ROUND_PAUSE_MS)
  }
}

async function processState(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // Already gone.
  }
}
