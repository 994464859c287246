/**
 * `akm-access shell --docker` against the Docker sandbox (an emulated Engine API whose fidelity the real docker CLI
 * proves in test/sandbox/docker/engine.test.ts): a real terminal, pipes byte for byte, stdin's end, exit codes, a
 * dropped stream, a stopped container. The CLI gets the sandbox's DOCKER_HOST and DOCKER_CONFIG only (never ~/.docker).
 */
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  cliEnv,
  cliInTerminal,
  cliInTerminalReportingModes,
  reportedExit,
  runCli,
  type Terminal,
} from '../helpers/cli.js'
import { expectCliError } from '../helpers/expect-cli.js'
import { DockerSandbox } from '../sandbox/docker/index.js'

let sandbox: DockerSandbox
let env: NodeJS.ProcessEnv
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await DockerSandbox.start()
  env = cliEnv(undefined, { TERM: 'xterm-256color', ...sandbox.dockerEnv() })
})
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
})

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

function shellInTerminal(args: string[] = [], size = { cols: 100, rows: 30 }): Terminal {
  const terminal = cliInTerminal(['shell', '--docker', ...args], env, size)
  terminals.push(terminal)
  return terminal
}

describe('akm-access shell --docker in a terminal', () => {
  it('opens a login shell in /work: prompt, echo, size and resize, TERM, exit status', async () => {
    const started = performance.now()
    const terminal = shellInTerminal([], { cols: 91, rows: 27 })
    // Debian's bash prompt: user@hostname (the container's short id), ~ for HOME=/work.
    await terminal.waitFor(`akamas@${sandbox.shortId}:~$ `)
    const toPrompt = performance.now() - started
    let mark = terminal.output.length
    terminal.type('echo "in $(pwd) as $(id -un), $((6*7))"\r')
    await terminal.waitFor('in /work as akamas, 42', { from: mark })
    // The typed line, echoed by the container's terminal.
    expect(terminal.output.slice(mark)).toContain('echo "in $(pwd) as $(id -un), $((6*7))"')
    terminal.type('stty size; echo "term=$TERM"\r')
    await terminal.waitFor('27 91', { from: mark })
    await terminal.waitFor('term=xterm-256color', { from: mark })
    mark = terminal.output.length
    terminal.resize(120, 40)
    await waitUntil(() =>
      sandbox.requests.some((r) => r.path.endsWith('/resize') && r.query.h === '40' && r.query.w === '120'),
    )
    terminal.type('stty size\r')
    await terminal.waitFor('40 120', { from: mark })
    terminal.type('exit 7\r')
    expect(await terminal.exit()).toEqual({ code: 7, signal: null })
    // The exec as created: a TTY of the terminal's size, [height, width], in /work, with our TERM.
    const create = sandbox.requests.filter((r) => r.path === `/containers/${sandbox.name}/exec`).at(-1)
    expect(create?.body).toMatchObject({
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: true,
      ConsoleSize: [27, 91],
      WorkingDir: '/work',
      Env: ['TERM=xterm-256color'],
    })
    const start = sandbox.requests.filter((r) => r.upgrade === 'tcp').at(-1)
    expect(start).toMatchObject({ status: 101, body: { Detach: false, Tty: true, ConsoleSize: [27, 91] } })
    console.info(`docker shell: prompt after ${Math.round(toPrompt)} ms`)
  })

  it('restores the terminal and exits 255 when the stream drops', async () => {
    const wrapper = cliInTerminalReportingModes(['shell', '--docker'], env)
    terminals.push(wrapper)
    await wrapper.waitFor(`akamas@${sandbox.shortId}:~$ `)
    sandbox.faults.dropAfterBytes = 1
    wrapper.type('echo trigger-output\r')
    await wrapper.waitFor('modes-done')
    expect(reportedExit(wrapper.output)).toEqual({ code: 255, restored: true })
    expect(wrapper.output).toMatch(/Error: the connection to the container was lost/)
  })

  it('ends a session with ~. (255)', async () => {
    const terminal = shellInTerminal()
    await terminal.waitFor(`akamas@${sandbox.shortId}:~$ `)
    terminal.type('\r~.')
    expect((await terminal.exit()).code).toBe(255)
    expect(terminal.output).toContain(`Connection to ${sandbox.name} closed.`)
  })
})

describe('akm-access shell --docker -- CMD on pipes', () => {
  it('keeps stdout and stderr apart and returns the exit status', async () => {
    const result = await runCli(['shell', '--docker', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], { env })
    expect(result).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' })
  })

  it('passes arguments as argv, untouched by a remote shell', async () => {
    const result = await runCli(['shell', '--docker', '--', 'printf', '[%s]\\n', 'a b', '$HOME', "it's", '--debug'], {
      env,
    })
    expect(result.stdout).toBe("[a b]\n[$HOME]\n[it's]\n[--debug]\n")
  })

  it('carries 4+ MiB of binary data byte for byte, both ways, and gives the command EOF', async () => {
    const data = randomBytes(4 * 1024 * 1024 + 4321)
    const started = performance.now()
    const result = await runCli(['shell', '--docker', '--', 'cat'], { env, input: data, timeoutMs: 30_000 })
    const seconds = (performance.now() - started) / 1000
    expect(result.code).toBe(0)
    expect(result.stdoutBuffer.length).toBe(data.length)
    expect(sha256(result.stdoutBuffer)).toBe(sha256(data))
    const counted = await runCli(['shell', '--docker', '--', 'sh', '-c', 'wc -c; echo after-eof >&2'], {
      env,
      input: data,
      timeoutMs: 30_000,
    })
    expect(counted).toMatchObject({ code: 0, stdout: `${data.length}\n`, stderr: 'after-eof\n' })
    console.info(`docker shell: ${(data.length / 1024 / 1024 / seconds).toFixed(1)} MiB/s through cat (both ways)`)
  })

  it('reports a lost stream as 255, never as success (unlike docker exec)', async () => {
    sandbox.faults.dropAfterBytes = 100_000
    const result = await runCli(['shell', '--docker', '--', 'sh', '-c', 'head -c 1000000 /dev/zero; sleep 1'], { env })
    expect(result.stdoutBuffer.length).toBeLessThan(1_000_000)
    expectCliErrorOnStderr(result.stderr, /the connection to the container was lost/)
    expect(result.code).toBe(255)
  })

  it('exits 127 with the shell’s message for a command that does not exist', async () => {
    const result = await runCli(['shell', '--docker', '--', 'no-such-command'], { env })
    expect(result.code).toBe(127)
    expect(result.stderr).toMatch(/no-such-command: not found/)
  })

  it('says that the container is stopped (exit 10), and works again once it runs', async () => {
    await sandbox.stopContainer()
    try {
      const result = await runCli(['shell', '--docker', '--', 'true'], { env })
      expectCliError(result, {
        code: 10,
        message: 'management container management-container is not running: exited (0)',
        hint: 'docker compose -p akamas up -d management-container',
      })
    } finally {
      await sandbox.startContainer()
    }
    const again = await runCli(['shell', '--docker', '--', 'hostname'], { env })
    expect(again).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
  })

  it('--container-name: the named container, or exit 9 when there is none', async () => {
    const named = await runCli(['shell', '--container-name', sandbox.name, '--', 'hostname'], { env })
    expect(named).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    const byId = await runCli(['shell', '--container-name', sandbox.shortId, '--', 'hostname'], { env })
    expect(byId).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
    const missing = await runCli(['shell', '--container-name', 'postgres', '--', 'true'], { env })
    expectCliError(missing, { code: 9, message: 'no container named postgres', hint: 'docker ps -a' })
  })
})

function expectCliErrorOnStderr(stderr: string, message: RegExp): void {
  const errors = stderr.split('\n').filter((line) => line.startsWith('Error: '))
  expect(errors, stderr).toHaveLength(1)
  expect(errors[0], stderr).toMatch(message)
}

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
