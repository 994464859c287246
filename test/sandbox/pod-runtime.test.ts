import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { PodProcess } from './contracts.js'
import { generateKeyPair, type KeyPair } from './keys.js'
import { createPodRuntime, type NamespacedPodRuntime, POD_PATH } from './pod-runtime.js'

let base: string
let hostKey: KeyPair
const pods: NamespacedPodRuntime[] = []

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'pod-runtime-test-'))
  hostKey = generateKeyPair(base, 'host_ed25519')
})

afterEach(async () => {
  await Promise.all(pods.splice(0).map((pod) => pod.destroy()))
})

afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

async function startPod(name: string, extra: { startSshd?: boolean; extraPorts?: Record<number, number> } = {}) {
  const dir = await mkdtemp(join(base, `${name}-`))
  const pod = await createPodRuntime({
    name,
    workDir: join(dir, 'work'),
    stateDir: join(dir, 'state'),
    hostKeyPath: hostKey.path,
    sshd: { authorizedKeys: [], passwordAuthentication: false },
    startSshd: extra.startSshd ?? false,
    extraPorts: extra.extraPorts,
  })
  pods.push(pod)
  return { pod, workDir: join(dir, 'work'), stateDir: join(dir, 'state') }
}

function collect(stream: Readable | null): () => string {
  let text = ''
  stream?.on('data', (chunk: Buffer) => {
    text += chunk.toString()
  })
  return () => text
}

/** Runs a command on pipes to its end: its exit, stdout and stderr. */
async function run(pod: NamespacedPodRuntime, argv: string[], stdin?: string) {
  const started = pod.exec(argv, { tty: false })
  const stdout = collect(started.stdout)
  const stderr = collect(started.stderr)
  started.stdin.end(stdin)
  const exit = await started.exited
  return { ...exit, stdout: stdout(), stderr: stderr() }
}

/** Resolves with the terminal's output so far once it matches `pattern`. */
async function waitForOutput(output: () => string, pattern: RegExp, timeoutMs = 5_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  while (!pattern.test(output())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} in terminal output: ${JSON.stringify(output())}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return output()
}

async function mountNamespaceMembers(namespace: string): Promise<number[]> {
  const members: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    if ((await readlink(`/proc/${entry}/ns/mnt`).catch(() => '')) === namespace) members.push(Number(entry))
  }
  return members
}

describe('pod processes', () => {
  it('run as akamas in /work, with the pod name as hostname and HOME=/work', async () => {
    const { pod } = await startPod('akamas-mgmt-0')
    const result = await run(pod, ['bash', '-lc', 'pwd; id -un; hostname; echo $HOME'])
    expect(result).toMatchObject({ code: 0, signal: null, stderr: '' })
    expect(result.stdout.split('\n')).toEqual(['/work', 'akamas', 'akamas-mgmt-0', '/work', ''])
  })

  it('get a clean environment, not the machine’s', async () => {
    process.env.POD_RUNTIME_TEST_LEAK = 'leaked'
    try {
      const { pod } = await startPod('clean-env')
      const plain = await run(pod, ['env'])
      expect(plain.stdout.trim().split('\n').sort()).toEqual(
        ['HOME=/work', 'HOSTNAME=clean-env', `PATH=${POD_PATH}`].sort(),
      )
      const loginShell = await run(pod, ['bash', '-lc', 'env'])
      const names = loginShell.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('=')[0])
      expect(names.filter((name) => !['HOME', 'HOSTNAME', 'PATH', 'PWD', 'SHLVL', '_'].includes(name!))).toEqual([])
      expect(loginShell.stdout).not.toContain('leaked')
    } finally {
      delete process.env.POD_RUNTIME_TEST_LEAK
    }
  })

  it('see the workDir as /work, owned by the pod user', async () => {
    const { pod, workDir } = await startPod('work-folder')
    await writeFile(join(workDir, 'from-host.txt'), 'host data\n')
    const result = await run(pod, ['sh', '-c', 'cat /work/from-host.txt && echo pod data > made-in-pod.txt'])
    expect(result).toMatchObject({ code: 0, stdout: 'host data\n' })
    expect(await readFile(join(workDir, 'made-in-pod.txt'), 'utf8')).toBe('pod data\n')
    expect((await stat(join(workDir, 'made-in-pod.txt'))).uid).toBe(pod.user.uid)
  })

  it('leave the machine’s accounts and hostname alone', async () => {
    const passwdBefore = await readFile('/etc/passwd', 'utf8')
    const { pod } = await startPod('accounts')
    expect((await run(pod, ['getent', 'passwd', 'akamas'])).stdout).toContain(':/work:/bin/bash')
    expect(await readFile('/etc/passwd', 'utf8')).toBe(passwdBefore)
    expect(passwdBefore).not.toMatch(/^akamas:/m)
    expect(hostname()).not.toBe('accounts')
  })

  it('report exit codes, stderr apart from stdout, and 127 for an unknown command', async () => {
    const { pod } = await startPod('exit-codes')
    expect(await run(pod, ['sh', '-c', 'echo out; echo err >&2; exit 7'])).toEqual({
      code: 7,
      signal: null,
      stdout: 'out\n',
      stderr: 'err\n',
    })
    expect(await run(pod, ['no-such-command'])).toMatchObject({ code: 127 })
  })

  it('get EOF when stdin is closed (no TTY)', async () => {
    const { pod } = await startPod('stdin-eof')
    expect(await run(pod, ['cat'], 'line one\nline two\n')).toMatchObject({ code: 0, stdout: 'line one\nline two\n' })
  })

  it('deliver every byte of a large output on pipes', async () => {
    const { pod } = await startPod('pipe-output')
    const result = await run(pod, ['seq', '1', '200000'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${Array.from({ length: 200_000 }, (_, i) => i + 1).join('\n')}\n`)
  })

  it('can be killed with a signal', async () => {
    const { pod } = await startPod('kill')
    const sleeper = pod.exec(['sleep', '60'], { tty: false })
    sleeper.kill('SIGTERM')
    expect(await sleeper.exited).toEqual({ code: null, signal: 'SIGTERM' })
  })
})

describe('pod processes in a terminal', () => {
  it('run an interactive bash: prompt, echo of typed input, TERM=xterm, exit code', async () => {
    const { pod } = await startPod('tty-bash')
    const shell = pod.exec(['bash'], { tty: true, cols: 100, rows: 30 })
    expect(shell.stderr).toBeNull()
    const output = collect(shell.stdout)
    await waitForOutput(output, /\$ $/)
    shell.stdin.write('echo "typed $((6 * 7)) $TERM"\r')
    const echoed = await waitForOutput(output, /typed 42 xterm\r\n/)
    expect(echoed).toContain('echo "typed $((6 * 7)) $TERM"')
    // The terminal is the shell's controlling terminal: ^C interrupts the foreground job.
    shell.stdin.write('sleep 30; echo not-interrupted\r')
    await waitForOutput(output, /sleep 30; echo not-interrupted\r\n/)
    shell.stdin.write('\x03')
    await waitForOutput(output, /\^C\r\n.*\$ $/s, 2_000)
    shell.stdin.write('exit 3\r')
    expect(await shell.exited).toEqual({ code: 3, signal: null })
    expect(output().match(/not-interrupted/g)).toHaveLength(1) // the echo of the typed line, not the command's
  })

  it('signals SIGWINCH to the foreground process on resize()', async () => {
    const { pod } = await startPod('tty-winch')
    const script = 'trap "stty size" WINCH; echo ready; while :; do sleep 0.02; done'
    const watcher = pod.exec(['sh', '-c', script], { tty: true, cols: 80, rows: 24 })
    const output = collect(watcher.stdout)
    await waitForOutput(output, /ready\r\n/)
    watcher.resize(132, 50)
    await waitForOutput(output, /^50 132\r$/m)
    watcher.kill('SIGKILL')
    await watcher.exited
  })

  it('has the requested size, and follows resize()', async () => {
    const { pod } = await startPod('tty-size')
    const shell = pod.exec(['bash'], { tty: true, cols: 100, rows: 30 })
    const output = collect(shell.stdout)
    await waitForOutput(output, /\$ $/)
    shell.stdin.write('stty size\r')
    await waitForOutput(output, /^30 100\r$/m)
    shell.resize(120, 40)
    shell.stdin.write('stty size\r')
    await waitForOutput(output, /^40 120\r$/m)
    shell.kill('SIGKILL')
    expect(await shell.exited).toEqual({ code: null, signal: 'SIGKILL' })
  })

  it('delivers the whole output of a process that prints a lot and exits', async () => {
    const { pod } = await startPod('tty-tail')
    const expected = `${Array.from({ length: 100_000 }, (_, i) => i + 1).join('\r\n')}\r\nEND\r\n`
    // Several at once, with the event loop made slow, to give a lost tail every chance to show.
    const runs = Array.from({ length: 4 }, async () => {
      const printer: PodProcess = pod.exec(['sh', '-c', 'seq 1 100000; echo END'], { tty: true })
      const chunks: Buffer[] = []
      printer.stdout.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        const until = Date.now() + 1
        while (Date.now() < until) {}
      })
      const exit = await printer.exited
      return { exit, text: Buffer.concat(chunks).toString() }
    })
    for (const { exit, text } of await Promise.all(runs)) {
      expect(exit).toEqual({ code: 0, signal: null })
      expect(text.length).toBe(expected.length)
      expect(text === expected).toBe(true)
    }
  })
})

describe('pods side by side', () => {
  it('have their own hostname and /work', async () => {
    const [first, second] = await Promise.all([startPod('pod-one'), startPod('pod-two')])
    await run(first.pod, ['sh', '-c', 'echo one > mine.txt'])
    expect((await run(first.pod, ['sh', '-c', 'hostname; ls'])).stdout).toBe('pod-one\nmine.txt\n')
    expect((await run(second.pod, ['sh', '-c', 'hostname; ls'])).stdout).toBe('pod-two\n')
    await first.pod.destroy()
    expect((await run(second.pod, ['hostname'])).stdout).toBe('pod-two\n')
  })
})

describe('dial', () => {
  let echoServer: Server
  let echoPort: number

  beforeAll(async () => {
    echoServer = createServer((socket) => socket.pipe(socket))
    echoServer.listen(0, '127.0.0.1')
    await once(echoServer, 'listening')
    const address = echoServer.address()
    echoPort = typeof address === 'object' && address ? address.port : 0
  })

  afterAll(() => {
    echoServer.close()
  })

  it('connects pod port 22 to sshd, extra ports to their host ports, and refuses the rest', async () => {
    const { pod } = await startPod('dial', { startSshd: true, extraPorts: { 8080: echoPort } })
    const ssh = await pod.dial(22)
    const [banner] = (await once(ssh, 'data')) as [Buffer]
    expect(banner.toString()).toMatch(/^SSH-2\.0-OpenSSH/)
    ssh.destroy()

    const echo = await pod.dial(8080)
    echo.write('ping')
    const [reply] = (await once(echo, 'data')) as [Buffer]
    expect(reply.toString()).toBe('ping')
    echo.destroy()

    await expect(pod.dial(9999)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })

  it('refuses port 22 while sshd is stopped; starts one sshd for simultaneous calls', async () => {
    const { pod } = await startPod('dial-stopped')
    expect(pod.sshPort).toBeUndefined()
    await expect(pod.dial(22)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    await Promise.all([pod.startSshd(), pod.startSshd()])
    expect(pod.sshPort).toBeGreaterThan(0)
    const listeners = await Promise.all(
      (await pod.processesInNamespace()).map(async (pid) => readFile(`/proc/${pid}/cmdline`, 'utf8')),
    )
    expect(listeners.filter((cmdline) => cmdline.includes('[listener]'))).toHaveLength(1)
    ;(await pod.dial(22)).destroy()
    await pod.stopSshd()
    await expect(pod.dial(22)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})

describe('destroy', () => {
  it('kills every process of the pod, removes its state, and can be called again', async () => {
    const { pod, stateDir } = await startPod('destroy', { startSshd: true })
    const sleeper = pod.exec(['sh', '-c', 'sleep 60 & echo in-pod; sleep 60'], { tty: false })
    const terminal = pod.exec(['bash'], { tty: true })
    collect(terminal.stdout)
    // Once it has printed, the process has joined the pod's namespace (nsenter has done its work).
    await waitForOutput(collect(sleeper.stdout), /in-pod/)
    const namespace = await readlink(`/proc/${sleeper.pid}/ns/mnt`)
    await expect.poll(() => mountNamespaceMembers(namespace)).toHaveLength(7)

    await Promise.all([pod.destroy(), pod.destroy()])
    expect(await mountNamespaceMembers(namespace)).toEqual([])
    expect((await sleeper.exited).signal).toBe('SIGKILL')
    expect((await terminal.exited).signal).toBe('SIGKILL')
    expect(await readdir(stateDir)).toEqual(['sshd.log'])
    await pod.destroy()
    expect(() => pod.exec(['true'], { tty: false })).toThrow(/destroyed/)
  })
})

describe('a sandbox process that ends without destroy()', () => {
  it('leaves no pod process behind: the namespace holder takes the pod down', async () => {
    const script = join(base, 'orphan.mts')
    await writeFile(
      script,
      [
        "import { readlinkSync } from 'node:fs'",
        `import { createPodRuntime } from ${JSON.stringify(join(import.meta.dirname, 'pod-runtime.ts'))}`,
        `const pod = await createPodRuntime(${JSON.stringify({
          name: 'orphan',
          workDir: join(base, 'orphan-work'),
          stateDir: join(base, 'orphan-state'),
          hostKeyPath: hostKey.path,
          sshd: { authorizedKeys: [], passwordAuthentication: false },
        })})`,
        // Once it has printed, the process is surely in the pod's namespace (nsenter has done its work).
        "const sleeper = pod.exec(['sh', '-c', 'echo in-pod; exec sleep 60'], { tty: false })",
        "await new Promise((resolve) => sleeper.stdout.once('data', resolve))",
        "console.log(readlinkSync('/proc/' + sleeper.pid + '/ns/mnt'))",
        'process.exit(0)',
      ].join('\n'),
    )
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const printed = collect(child.stdout)
    await once(child, 'close')
    const namespace = printed().trim()
    expect(namespace).toMatch(/^mnt:\[\d+\]$/)
    expect(namespace).not.toBe(await readlink('/proc/self/ns/mnt'))
    await expect.poll(() => mountNamespaceMembers(namespace), { timeout: 5_000 }).toEqual([])
  })
})

describe('without root', () => {
  it('refuses to start, saying why', async () => {
    const getuid = vi.spyOn(process as { getuid(): number }, 'getuid').mockReturnValue(1000)
    try {
      await expect(startPod('not-root')).rejects.toThrow(/needs root/)
    } finally {
      getuid.mockRestore()
    }
  })
})
